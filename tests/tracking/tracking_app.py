"""A tracking-only app (no gateway layers) over a migrated database, for API tests of the tracking core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.testclient import TestClient

from gateway.db import upgrade_database
from gateway.errors import install_error_handlers
from tests.services import fresh_postgres_database
from tracking.api import tracking_mounts
from tracking.db.engine import make_engine
from tracking.services import create_tracking


def build_tracking_app(database_uri: str, artifact_root: Path) -> FastAPI:
    """The tracking routers with the gateway's error translation, over ``database_uri`` (migrated here)."""
    engine = make_engine(database_uri)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    app = FastAPI()
    app.state.tracking = create_tracking(database_uri, str(artifact_root))
    install_error_handlers(app)
    for mount in tracking_mounts():
        app.include_router(mount.router, prefix=mount.prefix)
    return app


@contextmanager
def tracking_client(backend: str, tmp_path: Path) -> Iterator[TestClient]:
    """A TestClient over a fresh tracking app on ``backend`` ("sqlite" or "postgresql")."""
    if backend == "postgresql":
        with fresh_postgres_database() as uri:
            app = build_tracking_app(uri, tmp_path / "artifacts")
            try:
                with TestClient(app, base_url="http://127.0.0.1:5000") as client:
                    client.backend = backend
                    yield client
            finally:
                app.state.tracking.dispose()
    else:
        app = build_tracking_app(f"sqlite:///{tmp_path / 'tracking.db'}", tmp_path / "artifacts")
        try:
            with TestClient(app, base_url="http://127.0.0.1:5000") as client:
                client.backend = backend
                yield client
        finally:
            app.state.tracking.dispose()
