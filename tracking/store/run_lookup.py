"""Finding a run and checking that it may be changed (shared by every run-writing store module)."""

from __future__ import annotations

from sqlalchemy import Connection, Row, bindparam, select

from tracking.db.tables import experiments, runs
from tracking.errors import invalid_parameter, not_found
from tracking.store.validation import validate_run_id

ACTIVE = "active"
# Built once (statement construction costs more than running it).
_RUN_WITH_STAGE = (select(runs, experiments.c.lifecycle_stage.label("experiment_stage"))
                   .join(experiments, experiments.c.experiment_id == runs.c.experiment_id)
                   .where(runs.c.run_uuid == bindparam("run_id")))
_EXISTING = select(runs.c.run_uuid).where(runs.c.run_uuid.in_(bindparam("ids", expanding=True)))


def find_run(conn: Connection, run_id: str) -> Row | None:
    """The run's row plus its experiment's lifecycle stage (``experiment_stage``), or None."""
    return conn.execute(_RUN_WITH_STAGE, {"run_id": run_id}).first()


def get_run_row(conn: Connection, run_id: str, path: str = "run_id") -> Row:
    """The run's row, 400 for a malformed id, 404 for an unknown one."""
    validate_run_id(run_id, path)
    row = find_run(conn, run_id)
    if row is None:
        raise not_found(f"Run with id={run_id} not found")
    return row


def require_active_run(conn: Connection, run_id: str, path: str = "run_id") -> Row:
    """The run's row if both it and its experiment are active; MLflow's 400 otherwise."""
    row = get_run_row(conn, run_id, path)
    if row.lifecycle_stage != ACTIVE:
        raise invalid_parameter(
            f"The run {run_id} must be in the 'active' state. Current state is {row.lifecycle_stage}.")
    if row.experiment_stage != ACTIVE:
        raise invalid_parameter(
            f"The experiment {row.experiment_id} must be in the 'active' state. "
            f"Current state is {row.experiment_stage}.")
    return row


def existing_run_ids(conn: Connection, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` name existing runs (one query)."""
    if not run_ids:
        return set()
    return set(conn.execute(_EXISTING, {"ids": list(set(run_ids))}).scalars())
