"""Helpers for the logged model and trace tests: experiments and runs written straight to the database.

The MLflow 3 endpoints only need an experiment (and, for linked metrics, a run) to exist; writing
those rows directly keeps these tests independent of the experiments and runs endpoints.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import insert, select, update
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.services import fresh_postgres_database
from tracking.db.tables import experiments, metrics, runs


def serve_on_backend(backend: str, app_factory):
    """Yield an authenticated TestClient of a fresh app on ``backend`` ("sqlite" or "postgresql").

    The MLflow 3 test modules run on both databases: their queries use upserts, window functions
    and text casts whose behaviour differs between the two.
    """
    def serve(app):
        with TestClient(app, base_url="http://127.0.0.1:5000",
                        headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as c:
            yield c

    if backend == "postgresql":
        with fresh_postgres_database() as uri:
            yield from serve(app_factory(backend_store_uri=uri))
    else:
        yield from serve(app_factory())


def engine_of(client):
    """The SQLAlchemy engine of the app behind a TestClient."""
    return client.app.state.tracking.engine


def make_experiment(client, name: str | None = None, *, deleted: bool = False) -> str:
    """Insert an experiment and return its id as the API spells it (a string)."""
    now = int(time.time() * 1000)
    with engine_of(client).begin() as conn:
        exp_id = conn.execute(
            insert(experiments).values(
                name=name or f"exp-{uuid.uuid4().hex[:8]}", artifact_location="", lifecycle_stage="active",
                creation_time=now, last_update_time=now,
            ).returning(experiments.c.experiment_id)
        ).scalar_one()
        conn.execute(update(experiments).where(experiments.c.experiment_id == exp_id).values(
            artifact_location=f"mlflow-artifacts:/{exp_id}",
            lifecycle_stage="deleted" if deleted else "active"))
    return str(exp_id)


def make_run(client, experiment_id: str) -> str:
    """Insert a running run and return its id."""
    run_id = uuid.uuid4().hex
    with engine_of(client).begin() as conn:
        conn.execute(insert(runs).values(
            run_uuid=run_id, name="r", experiment_id=int(experiment_id), user_id="u", status="RUNNING",
            start_time=0, lifecycle_stage="active",
            artifact_uri=f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"))
    return run_id


def log_model_metric(client, run_id: str, model_id: str, key: str, value: float, *, step: int = 0,
                     timestamp: int = 1000, dataset_name: str | None = None, dataset_digest: str | None = None):
    """A metric row linked to a logged model, as runs/log-metric with ``model_id`` stores it."""
    with engine_of(client).begin() as conn:
        conn.execute(insert(metrics).values(
            run_uuid=run_id, key=key, value=value, is_nan=False, timestamp=timestamp, step=step,
            model_id=model_id, dataset_name=dataset_name, dataset_digest=dataset_digest))


def experiment_count(client, table) -> int:
    """Rows in ``table`` (to prove a refused request wrote nothing)."""
    with engine_of(client).connect() as conn:
        return len(conn.execute(select(table)).all())
