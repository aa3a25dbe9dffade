"""End-to-end fixtures: one real server per backend per session, driven by the real mlflow client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, LiveServer, start_server
from tests.services import fresh_postgres_database


@pytest.fixture(scope="session", params=BACKENDS)
def e2e_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """A real ``mlgate server`` on SQLite, then on PostgreSQL, shared by the e2e tests of a session."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            server = start_server(workdir, uri)
            yield server
            server.stop()
    else:
        server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}")
        yield server
        server.stop()


@pytest.fixture
def mlflow_client(e2e_server: LiveServer, monkeypatch):
    """The real ``mlflow`` client pointed at the e2e server through the standard environment variable."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", e2e_server.url)
    # The server requires authentication; the client sends these as HTTP Basic credentials.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", e2e_server.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", e2e_server.admin_password)
    mlflow.set_tracking_uri(e2e_server.url)
    yield MlflowClient(e2e_server.url)
    if mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (the e2e server is shared)."""
    return f"e2e-{uuid.uuid4().hex[:10]}"
