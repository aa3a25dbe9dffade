"""Where a run's artifacts live under the artifact root, read from the run's stored ``artifact_uri``."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from tracking.artifacts.paths import ArtifactOwner, ArtifactPath, parse_artifact_path
from tracking.db.tables import runs
from tracking.errors import MlflowError, invalid_parameter, not_found

SERVED_SCHEME = "mlflow-artifacts"


def served_location(artifact_uri: str) -> ArtifactPath | None:
    """The root-relative location of an ``mlflow-artifacts:`` URI, or None for anything this server does not serve."""
    parts = urlsplit(artifact_uri)
    if parts.scheme != SERVED_SCHEME or parts.query or parts.fragment:
        return None
    try:
        return parse_artifact_path(parts.path.lstrip("/"))
    except MlflowError:
        return None


def run_artifact_root(engine: Engine, run_id: str) -> tuple[ArtifactPath, str]:
    """The run's artifact directory and its ``artifact_uri``; 404 for an unknown run.

    The stored URI must name exactly this run's ``artifacts`` directory in this run's experiment: a
    run whose URI points elsewhere (another run, a local path, another host) is refused rather than
    served, so access to a run never reaches another owner's files.
    """
    with engine.connect() as conn:
        row = conn.execute(
            select(runs.c.experiment_id, runs.c.artifact_uri).where(runs.c.run_uuid == run_id)
        ).first()
    if row is None:
        raise not_found(f"Run with id={run_id[:100]} not found")
    location = served_location(row.artifact_uri)
    expected = ArtifactOwner(str(row.experiment_id), "run", run_id)
    if location is None or location.owner != expected or location.inner != "":
        raise invalid_parameter(
            f"The artifacts of run '{run_id}' are not stored under this server's artifact root, "
            "so this server does not serve them."
        )
    return location, row.artifact_uri
