"""Logged models (MLflow 3): create, read, finalize, delete, tags and params, in MLflow's JSON shape.

A logged model's metrics are the rows of ``metrics`` whose ``model_id`` names it (logged through
runs/log-metric and log-batch); they are read here, never written.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update

from tracking.db.mlflow3_tables import logged_model_params, logged_model_tags, logged_models
from tracking.db.tables import metrics
from tracking.errors import MlflowError, invalid_parameter
from tracking.store.experiment_checks import require_active_experiment
from tracking.store.upsert import dialect_insert
from tracking.store.validation import (
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
    check_length,
    validate_key,
)

# LoggedModelStatus of MLflow's service.proto: the enum names clients send and receive.
STATUS_BY_NUMBER = {0: "LOGGED_MODEL_STATUS_UNSPECIFIED", 1: "LOGGED_MODEL_PENDING", 2: "LOGGED_MODEL_READY",
                    3: "LOGGED_MODEL_UPLOAD_FAILED"}
STATUS_BY_NAME = {name: number for number, name in STATUS_BY_NUMBER.items()}
PENDING = 1
MAX_MODEL_NAME_LENGTH = 500
MAX_MODEL_TYPE_LENGTH = 500
MAX_PARAMS_PER_REQUEST = 100
# Characters MLflow refuses in a logged model's name (they would break models:/ URIs and paths).
_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def new_model_id() -> str:
    """A fresh logged model id, ``m-`` and 32 hex digits as MLflow makes them."""
    return f"m-{uuid.uuid4().hex}"


def model_not_found(model_id: str) -> MlflowError:
    """404 for a logged model that does not exist (or is deleted)."""
    return MlflowError(f"Logged model with ID '{model_id}' not found.", "RESOURCE_DOES_NOT_EXIST")


def parse_status(value: object) -> int:
    """A LoggedModelStatus given by number or enum name; 400 for anything else."""
    if isinstance(value, str) and STATUS_BY_NAME.get(value, 0) != 0:
        return STATUS_BY_NAME[value]
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value in STATUS_BY_NUMBER and value != 0:
        return value
    raise invalid_parameter(
        f"Invalid value {str(value)[:100]!r} for parameter 'status': expected one of "
        "LOGGED_MODEL_PENDING, LOGGED_MODEL_READY, LOGGED_MODEL_UPLOAD_FAILED.")


def validate_model_name(name: str | None) -> None:
    """MLflow's rule for logged model names: non-empty, no path or quote characters."""
    if name is None:
        return
    if not name or any(c in name for c in _BAD_NAME_CHARS):
        raise invalid_parameter(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_BAD_NAME_CHARS}")
    check_length("name", name, MAX_MODEL_NAME_LENGTH)


def validated_pairs(pairs: Iterable[dict], field: str, value_limit: int) -> dict[str, str]:
    """``[{key, value}]`` checked with MLflow's key rules; the last value of a repeated key wins."""
    out: dict[str, str] = {}
    for index, pair in enumerate(pairs):
        key = pair.get("key")
        value = pair.get("value")
        validate_key(key, f"{field}[{index}].key")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise invalid_parameter(f"Invalid value for parameter '{field}[{index}].value': expected a string.")
        check_length(f"{field}[{index}].value", value, value_limit)
        out[key] = value
    return out


def create_logged_model(conn: Connection, *, experiment_id: str, name: str | None, model_type: str | None,
                        source_run_id: str | None, params: list[dict], tags: list[dict]) -> dict:
    """Create a PENDING logged model under an active experiment and return it."""
    validate_model_name(name)
    check_length("model_type", model_type, MAX_MODEL_TYPE_LENGTH)
    check_length("source_run_id", source_run_id, 32)
    param_map = validated_pairs(params, "params", MAX_PARAM_VAL_LENGTH)
    tag_map = validated_pairs(tags, "tags", MAX_TAG_VAL_LENGTH)
    exp_id, artifact_location = require_active_experiment(conn, experiment_id)
    model_id = new_model_id()
    created = now_ms()
    conn.execute(logged_models.insert().values(
        model_id=model_id, experiment_id=exp_id, name=name or f"model-{model_id[2:10]}",
        artifact_location=f"{artifact_location.rstrip('/')}/models/{model_id}/artifacts",
        creation_timestamp_ms=created, last_updated_timestamp_ms=created, status=PENDING,
        lifecycle_stage="active", model_type=model_type or None, source_run_id=source_run_id or None,
    ))
    if param_map:
        conn.execute(logged_model_params.insert(), [
            {"model_id": model_id, "experiment_id": exp_id, "param_key": k, "param_value": v}
            for k, v in param_map.items()])
    if tag_map:
        conn.execute(logged_model_tags.insert(), [
            {"model_id": model_id, "experiment_id": exp_id, "tag_key": k, "tag_value": v}
            for k, v in tag_map.items()])
    return load_models(conn, [model_id])[0]


def _live_model_experiment(conn: Connection, model_id: str) -> int:
    row = conn.execute(
        select(logged_models.c.experiment_id)
        .where(logged_models.c.model_id == model_id, logged_models.c.lifecycle_stage != "deleted")
    ).first()
    if row is None:
        raise model_not_found(model_id)
    return row.experiment_id


def get_logged_model(conn: Connection, model_id: str, *, allow_deleted: bool = False) -> dict:
    """One logged model with its tags, params and metrics; 404 when missing or deleted."""
    found = load_models(conn, [model_id], allow_deleted=allow_deleted)
    if not found:
        raise model_not_found(model_id)
    return found[0]


def get_logged_model_experiment_id(conn: Connection, model_id: str) -> str | None:
    """The experiment holding ``model_id`` (deleted models included), for authorization; None if unknown."""
    row = conn.execute(select(logged_models.c.experiment_id).where(logged_models.c.model_id == model_id)).first()
    return None if row is None else str(row.experiment_id)


def finalize_logged_model(conn: Connection, model_id: str, status: object) -> dict:
    """Set the model's status (READY or UPLOAD_FAILED, or back to PENDING) and return the model."""
    number = parse_status(status)
    _live_model_experiment(conn, model_id)
    conn.execute(update(logged_models).where(logged_models.c.model_id == model_id)
                 .values(status=number, last_updated_timestamp_ms=now_ms()))
    return get_logged_model(conn, model_id)


def delete_logged_model(conn: Connection, model_id: str) -> None:
    """Mark the model deleted; it disappears from get and search."""
    _live_model_experiment(conn, model_id)
    conn.execute(update(logged_models).where(logged_models.c.model_id == model_id)
                 .values(lifecycle_stage="deleted", last_updated_timestamp_ms=now_ms()))


def set_logged_model_tags(conn: Connection, model_id: str, tags: list[dict]) -> None:
    """Insert or overwrite tags on a live model."""
    tag_map = validated_pairs(tags, "tags", MAX_TAG_VAL_LENGTH)
    exp_id = _live_model_experiment(conn, model_id)
    if not tag_map:
        return
    stmt = dialect_insert(conn, logged_model_tags)
    stmt = stmt.on_conflict_do_update(index_elements=["model_id", "tag_key"],
                                      set_={"tag_value": stmt.excluded.tag_value})
    conn.execute(stmt, [{"model_id": model_id, "experiment_id": exp_id, "tag_key": k, "tag_value": v}
                        for k, v in tag_map.items()])
    conn.execute(update(logged_models).where(logged_models.c.model_id == model_id)
                 .values(last_updated_timestamp_ms=now_ms()))


def delete_logged_model_tag(conn: Connection, model_id: str, key: str) -> None:
    """Remove one tag; 404 when the model or the tag does not exist."""
    _live_model_experiment(conn, model_id)
    result = conn.execute(delete(logged_model_tags).where(logged_model_tags.c.model_id == model_id,
                                                          logged_model_tags.c.tag_key == key))
    if result.rowcount == 0:
        raise MlflowError(f"No tag with key {key!r} found for model with ID {model_id!r}.",
                          "RESOURCE_DOES_NOT_EXIST")


def log_logged_model_params(conn: Connection, model_id: str, params: list[dict]) -> None:
    """Add params; a param, once logged, keeps its value (as run params do), a different value is 400."""
    if len(params) > MAX_PARAMS_PER_REQUEST:
        raise invalid_parameter(f"A request can log at most {MAX_PARAMS_PER_REQUEST} params, got {len(params)}.")
    param_map = validated_pairs(params, "params", MAX_PARAM_VAL_LENGTH)
    exp_id = _live_model_experiment(conn, model_id)
    if not param_map:
        return
    existing = dict(conn.execute(
        select(logged_model_params.c.param_key, logged_model_params.c.param_value)
        .where(logged_model_params.c.model_id == model_id, logged_model_params.c.param_key.in_(list(param_map)))
    ).all())
    for key, value in param_map.items():
        if key in existing and existing[key] != value:
            raise invalid_parameter(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{existing[key]}' for model ID='{model_id}'. Attempted logging new value '{value}'.")
    new_rows = [{"model_id": model_id, "experiment_id": exp_id, "param_key": k, "param_value": v}
                for k, v in param_map.items() if k not in existing]
    if new_rows:
        conn.execute(logged_model_params.insert(), new_rows)


def _json_double(value: float) -> float | str:
    # Protobuf JSON writes non-finite doubles as strings.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _metric_json(row) -> dict:
    value = "NaN" if row.is_nan else _json_double(row.value)
    out = {"key": row.key, "value": value, "timestamp": row.timestamp, "step": row.step,
           "model_id": row.model_id, "run_id": row.run_uuid}
    if row.dataset_name is not None:
        out["dataset_name"] = row.dataset_name
    if row.dataset_digest is not None:
        out["dataset_digest"] = row.dataset_digest
    return out


def load_models(conn: Connection, model_ids: list[str], *, allow_deleted: bool = False) -> list[dict]:
    """The models named by ``model_ids`` in that order, with tags, params and metrics (four queries)."""
    if not model_ids:
        return []
    query = select(logged_models).where(logged_models.c.model_id.in_(model_ids))
    if not allow_deleted:
        query = query.where(logged_models.c.lifecycle_stage != "deleted")
    rows = {row.model_id: row for row in conn.execute(query)}
    ids = [m for m in model_ids if m in rows]
    if not ids:
        return []
    tags: dict[str, list[dict]] = defaultdict(list)
    for r in conn.execute(select(logged_model_tags.c.model_id, logged_model_tags.c.tag_key,
                                 logged_model_tags.c.tag_value)
                          .where(logged_model_tags.c.model_id.in_(ids)).order_by(logged_model_tags.c.tag_key)):
        tags[r.model_id].append({"key": r.tag_key, "value": r.tag_value})
    params: dict[str, list[dict]] = defaultdict(list)
    for r in conn.execute(select(logged_model_params.c.model_id, logged_model_params.c.param_key,
                                 logged_model_params.c.param_value)
                          .where(logged_model_params.c.model_id.in_(ids)).order_by(logged_model_params.c.param_key)):
        params[r.model_id].append({"key": r.param_key, "value": r.param_value})
    model_metrics: dict[str, list[dict]] = defaultdict(list)
    for r in conn.execute(select(metrics.c.model_id, metrics.c.run_uuid, metrics.c.key, metrics.c.value,
                                 metrics.c.is_nan, metrics.c.timestamp, metrics.c.step, metrics.c.dataset_name,
                                 metrics.c.dataset_digest)
                          .where(metrics.c.model_id.in_(ids))
                          .order_by(metrics.c.key, metrics.c.timestamp, metrics.c.step)):
        model_metrics[r.model_id].append(_metric_json(r))
    return [_model_json(rows[m], tags[m], params[m], model_metrics[m]) for m in ids]


def _model_json(row, tags: list[dict], params: list[dict], model_metrics: list[dict]) -> dict:
    info = {
        "model_id": row.model_id,
        "experiment_id": str(row.experiment_id),
        "name": row.name,
        "creation_timestamp_ms": row.creation_timestamp_ms,
        "last_updated_timestamp_ms": row.last_updated_timestamp_ms,
        "artifact_uri": row.artifact_location,
        "status": STATUS_BY_NUMBER.get(row.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "tags": tags,
    }
    for field in ("model_type", "source_run_id", "status_message"):
        value = getattr(row, field)
        if value is not None:
            info[field] = value
    return {"info": info, "data": {"params": params, "metrics": model_metrics}}
