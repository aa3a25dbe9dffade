"""The experiment checks every MLflow 3 write shares: the experiment exists and is active."""

from __future__ import annotations

from sqlalchemy import Connection, select

from tracking.db.tables import experiments
from tracking.errors import MlflowError, invalid_parameter


def parse_experiment_id(experiment_id: str | int | None, field: str = "experiment_id") -> int:
    """An experiment id as the integer key of ``experiments``; 400 when it is not a number."""
    if experiment_id is None or experiment_id == "":
        raise invalid_parameter(f"Missing value for required parameter '{field}'.")
    try:
        value = int(str(experiment_id).strip())
    except ValueError:
        raise invalid_parameter(f"Invalid value {str(experiment_id)[:100]!r} for parameter '{field}': "
                                "an experiment id is a number.") from None
    if not 0 <= value < 2**31:
        raise MlflowError(f"No Experiment with id={value} exists", "RESOURCE_DOES_NOT_EXIST")
    return value


def require_active_experiment(conn: Connection, experiment_id: str | int,
                              field: str = "experiment_id") -> tuple[int, str]:
    """The experiment's id and artifact location; 404 when missing, 400 when deleted."""
    exp_id = parse_experiment_id(experiment_id, field)
    row = conn.execute(
        select(experiments.c.artifact_location, experiments.c.lifecycle_stage)
        .where(experiments.c.experiment_id == exp_id)
    ).first()
    if row is None:
        raise MlflowError(f"No Experiment with id={exp_id} exists", "RESOURCE_DOES_NOT_EXIST")
    if row.lifecycle_stage != "active":
        raise MlflowError(
            f"The experiment {exp_id} must be in the 'active' state. Current state is {row.lifecycle_stage}.",
            "INVALID_STATE",
        )
    return exp_id, row.artifact_location
