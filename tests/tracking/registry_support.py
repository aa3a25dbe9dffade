"""Shared fixtures and helpers of the model registry API tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import BACKENDS, TEST_ADMIN_TOKEN
from tests.services import fresh_postgres_database
from tracking.db.tables import runs

A = "/api/2.0/mlflow"


@dataclass
class Api:
    """A TestClient over a fresh app plus the app's artifact root, with registry shorthands."""

    client: TestClient
    artifact_root: Path

    def post(self, path: str, body: dict):
        """POST a JSON body under /api/2.0/mlflow."""
        return self.client.post(A + path, json=body)

    def get(self, path: str, params: dict | None = None):
        """GET with a query string under /api/2.0/mlflow."""
        return self.client.get(A + path, params=params)

    def patch(self, path: str, body: dict):
        """PATCH a JSON body under /api/2.0/mlflow."""
        return self.client.patch(A + path, json=body)

    def delete(self, path: str, body: dict | None = None, params: dict | None = None):
        """DELETE with a JSON body or a query string under /api/2.0/mlflow."""
        return self.client.request("DELETE", A + path, json=body, params=params)

    def create_model(self, name: str, **fields) -> dict:
        """Create a registered model and return its JSON."""
        r = self.post("/registered-models/create", {"name": name, **fields})
        assert r.status_code == 200, r.text
        return r.json()["registered_model"]

    def create_version(self, name: str, source: str = "s3://bucket/model", **fields) -> dict:
        """Create a model version and return its JSON."""
        r = self.post("/model-versions/create", {"name": name, "source": source, **fields})
        assert r.status_code == 200, r.text
        return r.json()["model_version"]

    def create_run(self, experiment_id: int = 0) -> str:
        """Insert a run row directly (the runs API is another module's) and return its id."""
        run_id = uuid.uuid4().hex
        engine = self.client.app.state.tracking.engine
        with engine.begin() as conn:
            conn.execute(runs.insert().values(
                run_uuid=run_id, name="r", experiment_id=experiment_id, user_id="u", status="RUNNING",
                start_time=0, lifecycle_stage="active",
                artifact_uri=f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"))
        return run_id

    def create_logged_model(self, run_id: str, experiment_id: int = 0) -> str:
        """Insert a logged model row directly (the logged-model API is another module's); return its id."""
        from tracking.db.mlflow3_tables import logged_models

        model_id = "m-" + uuid.uuid4().hex
        engine = self.client.app.state.tracking.engine
        with engine.begin() as conn:
            conn.execute(logged_models.insert().values(
                model_id=model_id, experiment_id=experiment_id, name="clf",
                artifact_location=f"mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts",
                creation_timestamp_ms=1, last_updated_timestamp_ms=1, status=2, lifecycle_stage="active",
                source_run_id=run_id))
        return model_id


def error_of(response) -> tuple[int, str]:
    """The status code and MLflow error code of a response."""
    return response.status_code, response.json().get("error_code")


@pytest.fixture(name="api", params=BACKENDS)
def api_fixture(request, app_factory, settings) -> Iterator[Api]:
    """A fresh app over SQLite, then over PostgreSQL, called as the test administrator."""
    root = Path(settings.artifacts_destination)
    headers = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            with TestClient(app_factory(backend_store_uri=uri), base_url="http://127.0.0.1:5000",
                            headers=headers) as c:
                yield Api(c, root)
    else:
        with TestClient(app_factory(), base_url="http://127.0.0.1:5000", headers=headers) as c:
            yield Api(c, root)
