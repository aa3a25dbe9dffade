"""Runs: create, read (bulk JSON), update, soft delete/restore, tags; run name kept in sync with its tag."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from types import SimpleNamespace

from sqlalchemy import Connection, Row, delete, insert, select, update

from tracking.db.by_ids import by_ids
from tracking.db.tables import latest_metrics, params, runs, tags
from tracking.errors import invalid_parameter, not_found
from tracking.store.datasets import load_run_io
from tracking.store.experiments import check_experiment_active, get_experiment_row, now_ms, served_root
from tracking.store.metrics import metric_value_json
from tracking.store.run_lookup import find_run, get_run_row, require_active_run
from tracking.store.run_names import random_run_name
from tracking.store.upsert import dialect_insert, statement_for
from tracking.store.validation import (
    MAX_RUN_NAME_LENGTH,
    MAX_USER_ID_LENGTH,
    check_length,
    validate_run_id,
    validate_run_tag,
)

RUN_NAME_TAG = "mlflow.runName"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
CHUNK = 500

__all__ = [
    "RUN_NAME_TAG", "check_run_tags", "create_run", "delete_run", "delete_tag", "get_run", "get_run_experiment_id",
    "get_run_row", "require_active_run", "restore_run", "run_info_json", "runs_to_json", "set_tags", "update_run",
]


def get_run_experiment_id(conn: Connection, run_id: str) -> str | None:
    """The id of the experiment owning ``run_id`` (deleted or not), or None for an unknown run."""
    if not isinstance(run_id, str) or not run_id:
        return None
    value = conn.execute(select(runs.c.experiment_id).where(runs.c.run_uuid == run_id)).scalar()
    return None if value is None else str(value)


def run_info_json(row: Row | SimpleNamespace) -> dict:
    """MLflow's RunInfo JSON for a ``runs`` row."""
    info = {
        "run_uuid": row.run_uuid,
        "experiment_id": str(row.experiment_id),
        "run_name": row.name,
        "user_id": row.user_id,
        "status": row.status,
        "start_time": row.start_time,
        "artifact_uri": row.artifact_uri,
        "lifecycle_stage": row.lifecycle_stage,
        "run_id": row.run_uuid,
    }
    if row.start_time is None:
        del info["start_time"]
    if row.end_time is not None:
        info["end_time"] = row.end_time
    return info


def _run_info(run_uuid: str, experiment_id: int, name: str, user_id: str, status: str, start_time: int | None,
              end_time: int | None, lifecycle_stage: str, artifact_uri: str) -> dict:
    """RunInfo JSON from the columns of _RUN_INFO_COLUMNS (positional: no attribute lookups per row)."""
    if start_time is None:
        info = {"run_uuid": run_uuid, "experiment_id": str(experiment_id), "run_name": name, "user_id": user_id,
                "status": status, "artifact_uri": artifact_uri, "lifecycle_stage": lifecycle_stage,
                "run_id": run_uuid}
    else:
        info = {"run_uuid": run_uuid, "experiment_id": str(experiment_id), "run_name": name, "user_id": user_id,
                "status": status, "start_time": start_time, "artifact_uri": artifact_uri,
                "lifecycle_stage": lifecycle_stage, "run_id": run_uuid}
    if end_time is not None:
        info["end_time"] = end_time
    return info


# Built once, for one run (``= :id``) and for many (see tracking.db.by_ids). Columns are named and read by
# position: building a page of 100 runs' JSON is Python work per row, and a Row's attribute access costs
# more than the tuple unpacking.
_RUN_INFO_COLUMNS = (runs.c.run_uuid, runs.c.experiment_id, runs.c.name, runs.c.user_id, runs.c.status,
                     runs.c.start_time, runs.c.end_time, runs.c.lifecycle_stage, runs.c.artifact_uri)
_LATEST_COLUMNS = (latest_metrics.c.run_uuid, latest_metrics.c.key, latest_metrics.c.value, latest_metrics.c.is_nan,
                   latest_metrics.c.timestamp, latest_metrics.c.step)
_RUNS_BY_ID = by_ids(lambda where: select(*_RUN_INFO_COLUMNS).where(where(runs.c.run_uuid)))
_LATEST_BY_RUN = by_ids(lambda where: select(*_LATEST_COLUMNS).where(where(latest_metrics.c.run_uuid))
                            .order_by(latest_metrics.c.run_uuid, latest_metrics.c.key))
_PARAMS_BY_RUN = by_ids(lambda where: select(params.c.run_uuid, params.c.key, params.c.value)
                            .where(where(params.c.run_uuid)).order_by(params.c.run_uuid, params.c.key))
_TAGS_BY_RUN = by_ids(lambda where: select(tags.c.run_uuid, tags.c.key, tags.c.value)
                          .where(where(tags.c.run_uuid)).order_by(tags.c.run_uuid, tags.c.key))


def runs_to_json(conn: Connection, run_ids: list[str]) -> list[dict]:
    """MLflow's Run JSON for each existing run id, in the given order (six queries per 500 runs)."""
    unique = list(dict.fromkeys(r for r in run_ids if isinstance(r, str)))
    infos: dict[str, dict] = {}
    metrics_by_run: dict[str, list[dict]] = defaultdict(list)
    params_by_run: dict[str, list[dict]] = defaultdict(list)
    tags_by_run: dict[str, list[dict]] = defaultdict(list)
    finite = math.isfinite
    for start in range(0, len(unique), CHUNK):
        ids = unique[start:start + CHUNK]
        for row in _RUNS_BY_ID.execute(conn, ids):
            infos[row[0]] = _run_info(*row)
        for run_id, key, value, is_nan, timestamp, step in _LATEST_BY_RUN.execute(conn, ids):
            metrics_by_run[run_id].append({
                "key": key, "value": value if not is_nan and finite(value) else metric_value_json(value, is_nan),
                "timestamp": timestamp, "step": step})
        for run_id, key, value in _PARAMS_BY_RUN.execute(conn, ids):
            params_by_run[run_id].append({"key": key, "value": value})
        for run_id, key, value in _TAGS_BY_RUN.execute(conn, ids):
            tags_by_run[run_id].append({"key": key, "value": value})
    found = [r for r in unique if r in infos]
    dataset_inputs, model_inputs, model_outputs = load_run_io(conn, found)
    by_id = {
        run_id: {
            "info": infos[run_id],
            "data": {"metrics": metrics_by_run[run_id], "params": params_by_run[run_id],
                     "tags": tags_by_run[run_id]},
            "inputs": {"dataset_inputs": dataset_inputs.get(run_id, []),
                       "model_inputs": model_inputs.get(run_id, [])},
            "outputs": {"model_outputs": model_outputs.get(run_id, [])},
        }
        for run_id in found
    }
    return [by_id[r] for r in run_ids if r in by_id]


def get_run(conn: Connection, run_id: str, path: str = "run_id") -> dict:
    """The full Run JSON, 400 for a malformed id, 404 for an unknown run."""
    validate_run_id(run_id, path)
    found = runs_to_json(conn, [run_id])
    if not found:
        raise not_found(f"Run with id={run_id} not found")
    return found[0]


def _check_run_name(name: str, path: str) -> str:
    check_length(path, name, MAX_RUN_NAME_LENGTH)
    return name


def create_run(conn: Connection, experiment_id: int, user_id: str, start_time: int | None,
               tag_pairs: list[tuple[str, str]], run_name: str | None) -> dict:
    """Create a RUNNING run in an active experiment and return its Run JSON; ``run_name`` and the
    ``mlflow.runName`` tag always agree.
    """
    check_length("user_id", user_id, MAX_USER_ID_LENGTH)
    checked = dict(validate_run_tag(k, v, f"tags[{i}]") for i, (k, v) in enumerate(tag_pairs))
    tag_name = checked.get(RUN_NAME_TAG) or None
    if run_name and tag_name and run_name != tag_name:
        raise invalid_parameter(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
            f"(run_name='{run_name}', mlflow.runName='{tag_name}').")
    name = _check_run_name(run_name or tag_name or random_run_name(), "run_name")
    checked[RUN_NAME_TAG] = name
    experiment = get_experiment_row(conn, experiment_id)
    check_experiment_active(experiment)
    run_id = uuid.uuid4().hex
    values = {
        "run_uuid": run_id, "name": name, "experiment_id": experiment_id, "user_id": user_id, "status": "RUNNING",
        "start_time": start_time if start_time is not None else now_ms(), "end_time": None,
        "lifecycle_stage": "active", "artifact_uri": f"{served_root(experiment)}/{run_id}/artifacts",
        "deleted_time": None,
    }
    conn.execute(insert(runs).values(**values))
    ordered = sorted(checked.items())
    conn.execute(insert(tags), [{"run_uuid": run_id, "key": k, "value": v} for k, v in ordered])
    # A new run has nothing but its info and tags, so its JSON is built without reading it back.
    return {
        "info": run_info_json(SimpleNamespace(**values)),
        "data": {"metrics": [], "params": [], "tags": [{"key": k, "value": v} for k, v in ordered]},
        "inputs": {"dataset_inputs": [], "model_inputs": []},
        "outputs": {"model_outputs": []},
    }


def update_run(conn: Connection, run_id: str, status: str | None, end_time: int | None,
               run_name: str | None) -> dict:
    """Change an active run's status, end time and/or name; returns the new RunInfo JSON."""
    if status is not None and status not in RUN_STATUSES:
        raise invalid_parameter(f"Invalid value '{status[:50]}' for parameter 'status': must be one of "
                                f"{', '.join(RUN_STATUSES)}.")
    if run_name:
        _check_run_name(run_name, "run_name")
    require_active_run(conn, run_id)
    values: dict = {}
    if status is not None:
        values["status"] = status
    if end_time is not None:
        values["end_time"] = end_time
    if run_name:
        values["name"] = run_name
        _upsert_tags(conn, run_id, {RUN_NAME_TAG: run_name})
    if values:
        conn.execute(update(runs).where(runs.c.run_uuid == run_id).values(**values))
    return run_info_json(find_run(conn, run_id))


def delete_run(conn: Connection, run_id: str) -> None:
    """Soft-delete a run (deleting it again is allowed, as in MLflow)."""
    get_run_row(conn, run_id)
    conn.execute(update(runs).where(runs.c.run_uuid == run_id).values(lifecycle_stage="deleted",
                                                                      deleted_time=now_ms()))


def restore_run(conn: Connection, run_id: str) -> None:
    """Restore a soft-deleted run."""
    get_run_row(conn, run_id)
    conn.execute(update(runs).where(runs.c.run_uuid == run_id).values(lifecycle_stage="active",
                                                                      deleted_time=None))


def _tags_upsert(conn: Connection):
    stmt = dialect_insert(conn, tags)
    return stmt.on_conflict_do_update(index_elements=["run_uuid", "key"], set_={"value": stmt.excluded.value})


def _upsert_tags(conn: Connection, run_id: str, values: dict[str, str]) -> None:
    conn.execute(statement_for(conn, "run-tags-upsert", _tags_upsert),
                 [{"run_uuid": run_id, "key": k, "value": v} for k, v in sorted(values.items())])


def check_run_tags(tag_pairs: list[tuple[str, str]], prefix: str = "tags") -> dict[str, str]:
    """Validate run tags (the last value wins for a repeated key); the run name tag must fit a name."""
    checked = dict(validate_run_tag(k, v, f"{prefix}[{i}]" if prefix else "")
                   for i, (k, v) in enumerate(tag_pairs))
    if RUN_NAME_TAG in checked:
        _check_run_name(checked[RUN_NAME_TAG], RUN_NAME_TAG)
    return checked


def set_tags(conn: Connection, run: Row, checked: dict[str, str]) -> None:
    """Write already-validated tags on an active run; setting ``mlflow.runName`` renames the run."""
    if not checked:
        return
    _upsert_tags(conn, run.run_uuid, checked)
    if checked.get(RUN_NAME_TAG):
        conn.execute(update(runs).where(runs.c.run_uuid == run.run_uuid).values(name=checked[RUN_NAME_TAG]))


def delete_tag(conn: Connection, run_id: str, key: str) -> None:
    """Remove a tag from an active run; 404 when the run has no such tag."""
    require_active_run(conn, run_id)
    result = conn.execute(delete(tags).where(tags.c.run_uuid == run_id, tags.c.key == key))
    if result.rowcount == 0:
        raise not_found(f"No tag with name: {key} in run with id {run_id}")

