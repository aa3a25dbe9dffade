"""Copy MLflow experiments and runs (tags, params, full metric histories, dataset inputs) keeping ids and times.

Identity: an experiment is matched by name (MLflow's names are unique), a run by its uuid. A new
experiment keeps its MLflow id when mlgate has no experiment with that id; otherwise it gets the next
free id and a note says so. Runs keep their uuids, times, status and lifecycle stage; their artifacts
live at mlgate's default place for the (possibly new) experiment id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import Connection, Engine, Table, func, insert, select, text, update

from gateway.mlflow_import.source import in_default_workspace
from gateway.mlflow_import.tally import Tally
from tracking.db.tables import datasets, experiment_tags, experiments, inputs, metrics, params, runs, tags
from tracking.scope import DEFAULT_WORKSPACE
from tracking.store.datasets import DatasetInput, log_inputs
from tracking.store.experiments import default_artifact_location, now_ms
from tracking.store.metrics import Metric, log_metrics
from tracking.store.params import log_params
from tracking.store.transaction import write_transaction
from tracking.store.upsert import insert_ignoring_conflicts

TRACKING_TABLES = ("experiments", "experiment_tags", "runs", "tags", "params", "metrics", "datasets", "inputs",
                   "input_tags", "registered_models", "registered_model_tags", "model_versions",
                   "model_version_tags", "registered_model_aliases", "alembic_version")
REQUIRED_TRACKING_TABLES = ("experiments", "runs", "metrics", "params", "tags")
METRIC_BATCH = 2000
OTHER_WORKSPACE = "in an MLflow workspace other than 'default' (mlgate has one namespace)"


@dataclass(frozen=True)
class ImportedRun:
    """Where a copied run's artifacts were in MLflow and are in mlgate."""

    run_id: str
    experiment_id: int
    source_uri: str | None
    target_uri: str


def merge_rows(conn: Connection, table: Table, owner: dict, key: str, rows: list[dict], tally: Tally,
               kind: str, unique: list[str] | None = None) -> None:
    """Insert the rows of one owner whose ``key`` is new; count the others as present (values are kept).

    ``unique`` names the table's unique key when it is not the owner's columns plus ``key``.
    """
    where = [table.c[col] == value for col, value in owner.items()]
    existing = {r[0] for r in conn.execute(select(table.c[key]).where(*where))}
    new = [{**owner, **row} for row in rows if row[key] not in existing]
    insert_ignoring_conflicts(conn, table, new, unique or [*owner, key])
    tally.imported(kind, len(new))
    tally.present(kind, len(rows) - len(new))


def _place_experiment(conn: Connection, row, tally: Tally, *, renumber: bool) -> int | None:
    """The mlgate id of the experiment, inserting it if new; None when its id is taken and not ``renumber``."""
    # MLflow's default workspace is imported into mlgate's: names are matched there only (unique per workspace).
    by_name = conn.execute(select(experiments.c.experiment_id).where(
        experiments.c.name == row.name, experiments.c.workspace == DEFAULT_WORKSPACE)).scalar()
    if by_name is not None:
        tally.present("experiments")
        if by_name != row.experiment_id:
            tally.note(f"MLflow experiment {row.experiment_id} ({row.name!r}) is mlgate experiment {by_name} "
                       "(matched by name).")
        return by_name
    id_taken = conn.execute(select(experiments.c.experiment_id)
                            .where(experiments.c.experiment_id == row.experiment_id)).first() is not None
    if id_taken and not renumber:
        return None
    created = row.creation_time if row.creation_time is not None else now_ms()
    values = {"name": row.name, "artifact_location": "", "workspace": DEFAULT_WORKSPACE,
              "lifecycle_stage": row.lifecycle_stage or "active",
              "creation_time": created,
              "last_update_time": row.last_update_time if row.last_update_time is not None else created}
    if not id_taken:
        values["experiment_id"] = row.experiment_id
    new_id = conn.execute(insert(experiments).values(**values).returning(experiments.c.experiment_id)).scalar_one()
    # The artifact location is mlgate's default one: MLflow's may be a local path this server never serves.
    conn.execute(update(experiments).where(experiments.c.experiment_id == new_id)
                 .values(artifact_location=default_artifact_location(new_id)))
    if id_taken:
        tally.note(f"MLflow experiment {row.experiment_id} ({row.name!r}) is mlgate experiment {new_id}: "
                   f"id {row.experiment_id} was already used by another experiment.")
    tally.imported("experiments")
    return new_id


def copy_experiments(src: dict[str, Table], source: Engine, target: Engine, tally: Tally,
                     advance: Callable[[int], None]) -> dict[int, int]:
    """Copy every experiment with its tags; returns MLflow experiment id -> mlgate experiment id."""
    table = src["experiments"]
    with source.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.experiment_id)).all()
        tag_table = src.get("experiment_tags")
        all_tags = conn.execute(select(tag_table)).all() if tag_table is not None else []
    tags_of: dict[int, list[dict]] = {}
    for tag in all_tags:
        tags_of.setdefault(tag.experiment_id, []).append({"key": tag.key, "value": tag.value or ""})
    mapping: dict[int, int] = {}
    renumbered = []
    # Experiments whose ids are free keep them first; only then do the others take new ids, so one taken
    # id never pushes later experiments off theirs.
    for renumber, batch in ((False, rows), (True, renumbered)):
        if renumber:
            _advance_sequence(target)
        for row in batch:
            if not renumber:
                advance(1)
                if not in_default_workspace(table, row):
                    tally.skipped("experiments", OTHER_WORKSPACE)
                    continue
            with write_transaction(target) as conn:
                new_id = _place_experiment(conn, row, tally, renumber=renumber)
                if new_id is None:
                    renumbered.append(row)
                    continue
                mapping[row.experiment_id] = new_id
                merge_rows(conn, experiment_tags, {"experiment_id": new_id}, "key",
                           tags_of.get(row.experiment_id, []), tally, "experiment tags")
    return mapping


def _advance_sequence(target: Engine) -> None:
    """Move PostgreSQL's experiment id sequence past the explicit ids just inserted (SQLite's AUTOINCREMENT
    does this by itself), so renumbered and later experiments never collide with them.
    """
    with target.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), "
                              "GREATEST((SELECT MAX(experiment_id) FROM experiments), 1))"))


@dataclass
class RunChildren:
    """What MLflow holds for one run."""

    tags: list[dict]
    params: dict[str, str]
    metrics: list[Metric]
    dataset_inputs: list[DatasetInput]


def _read_dataset_inputs(conn: Connection, src: dict[str, Table], run_id: str) -> list[DatasetInput]:
    if not {"datasets", "inputs"} <= set(src):
        return []
    ds, links, link_tags = src["datasets"], src["inputs"], src.get("input_tags")
    rows = conn.execute(
        select(links.c.input_uuid, ds.c.name, ds.c.digest, ds.c.dataset_source_type, ds.c.dataset_source,
               ds.c.dataset_schema, ds.c.dataset_profile)
        .join(ds, ds.c.dataset_uuid == links.c.source_id)
        .where(links.c.source_type == "DATASET", links.c.destination_type == "RUN",
               links.c.destination_id == run_id)).all()
    out = []
    for row in rows:
        pairs: tuple[tuple[str, str], ...] = ()
        if link_tags is not None:
            pairs = tuple((t.name, t.value) for t in conn.execute(
                select(link_tags.c.name, link_tags.c.value).where(link_tags.c.input_uuid == row.input_uuid)
                .order_by(link_tags.c.name)))
        out.append(DatasetInput(row.name, row.digest, row.dataset_source_type, row.dataset_source,
                                row.dataset_schema, row.dataset_profile, pairs))
    return out


def read_run_children(conn: Connection, src: dict[str, Table], run_id: str) -> RunChildren:
    """A run's tags, params, every metric point and its dataset inputs, from MLflow."""
    t, p, m = src["tags"], src["params"], src["metrics"]
    run_tags = [{"key": r.key, "value": r.value or ""} for r in conn.execute(select(t).where(t.c.run_uuid == run_id))]
    run_params = {r.key: r.value for r in conn.execute(select(p).where(p.c.run_uuid == run_id))}
    points = [
        Metric(r.key, math.nan if r.is_nan else r.value, r.timestamp or 0, r.step or 0)
        for r in conn.execute(select(m.c.key, m.c.value, m.c.is_nan, m.c.timestamp, m.c.step)
                              .where(m.c.run_uuid == run_id).order_by(m.c.key, m.c.step, m.c.timestamp))]
    return RunChildren(run_tags, run_params, points, _read_dataset_inputs(conn, src, run_id))


def _place_run(conn: Connection, row, experiment_id: int, tally: Tally) -> str | None:
    """Insert the run (or find it); None when its uuid belongs to a run in another experiment."""
    found = conn.execute(select(runs.c.experiment_id, runs.c.artifact_uri)
                         .where(runs.c.run_uuid == row.run_uuid)).first()
    if found is not None:
        if found.experiment_id != experiment_id:
            tally.skipped("runs", "its run id is used by a run of another mlgate experiment")
            return None
        tally.present("runs")
        return found.artifact_uri
    artifact_uri = f"mlflow-artifacts:/{experiment_id}/{row.run_uuid}/artifacts"
    conn.execute(insert(runs).values(
        run_uuid=row.run_uuid, name=row.name or "", experiment_id=experiment_id, user_id=row.user_id or "",
        status=row.status or "FINISHED", start_time=row.start_time, end_time=row.end_time,
        lifecycle_stage=row.lifecycle_stage or "active", artifact_uri=artifact_uri,
        deleted_time=getattr(row, "deleted_time", None)))
    tally.imported("runs")
    return artifact_uri


def _copy_params(conn: Connection, run_id: str, values: dict[str, str], tally: Tally) -> None:
    existing = {r.key: r.value for r in conn.execute(select(params.c.key, params.c.value)
                                                     .where(params.c.run_uuid == run_id))}
    differing = [k for k in values if k in existing and existing[k] != values[k]]
    if differing:
        tally.skipped("params", "mlgate holds another value for the same run and key", len(differing))
    tally.present("params", sum(1 for k in values if existing.get(k) == values[k]))
    new = {k: v for k, v in values.items() if k not in existing}
    log_params(conn, run_id, new)
    tally.imported("params", len(new))


def _count(conn: Connection, table: Table, run_id: str) -> int:
    return conn.execute(select(func.count()).select_from(table).where(table.c.run_uuid == run_id)).scalar_one()


def _copy_metrics(conn: Connection, run_id: str, points: list[Metric], tally: Tally) -> None:
    before = _count(conn, metrics, run_id)
    for start in range(0, len(points), METRIC_BATCH):
        log_metrics(conn, run_id, points[start:start + METRIC_BATCH])
    added = _count(conn, metrics, run_id) - before
    tally.imported("metrics", added)
    tally.present("metrics", len(points) - added)


def _copy_dataset_inputs(conn: Connection, run_id: str, experiment_id: int, items: list[DatasetInput],
                         tally: Tally) -> None:
    linked = {(r.name, r.digest) for r in conn.execute(
        select(datasets.c.name, datasets.c.digest).join(inputs, inputs.c.source_id == datasets.c.dataset_uuid)
        .where(inputs.c.source_type == "DATASET", inputs.c.destination_type == "RUN",
               inputs.c.destination_id == run_id))}
    new = [item for item in items if (item.name, item.digest) not in linked]
    log_inputs(conn, SimpleNamespace(run_uuid=run_id, experiment_id=experiment_id), new, [])
    tally.imported("dataset inputs", len(new))
    tally.present("dataset inputs", len(items) - len(new))


def copy_runs(src: dict[str, Table], source: Engine, target: Engine, experiment_ids: dict[int, int], tally: Tally,
              advance: Callable[[int], None], on_run: Callable[[ImportedRun], None]) -> list[ImportedRun]:
    """Copy every run of an imported experiment, one transaction per run; ``on_run`` copies its artifacts."""
    table = src["runs"]
    with source.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.experiment_id, table.c.start_time,
                                                   table.c.run_uuid)).all()
    done = []
    for row in rows:
        experiment_id = experiment_ids.get(row.experiment_id)
        if experiment_id is None:
            tally.skipped("runs", "its experiment was not imported")
            advance(1)
            continue
        with source.connect() as conn:
            children = read_run_children(conn, src, row.run_uuid)
        with write_transaction(target) as conn:
            target_uri = _place_run(conn, row, experiment_id, tally)
            if target_uri is not None:
                merge_rows(conn, tags, {"run_uuid": row.run_uuid}, "key", children.tags, tally, "run tags")
                _copy_params(conn, row.run_uuid, children.params, tally)
                _copy_metrics(conn, row.run_uuid, children.metrics, tally)
                _copy_dataset_inputs(conn, row.run_uuid, experiment_id, children.dataset_inputs, tally)
        if target_uri is not None:
            imported = ImportedRun(row.run_uuid, experiment_id, row.artifact_uri, target_uri)
            on_run(imported)
            done.append(imported)
        advance(1)
    return done
