"""A tracking-only app (no gateway layers) over a migrated database, for API tests of the tracking core."""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import insert
from starlette.requests import Request
from starlette.testclient import TestClient

from gateway.db import upgrade_database
from gateway.errors import install_error_handlers
from tests.services import fresh_postgres_database
from tracking.api import tracking_mounts
from tracking.db.engine import make_engine
from tracking.db.schema import metadata
from tracking.db.tables import experiments
from tracking.scope import REQUEST_STATE_KEY, UNRESTRICTED, VisibilityScope
from tracking.services import create_tracking
from tracking.store.experiments import now_ms


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

    @app.middleware("http")
    async def unrestricted(request, call_next):
        # No gateway here: tracking shows nothing without a scope, so these tests see everything explicitly.
        setattr(request.state, REQUEST_STATE_KEY, UNRESTRICTED)
        return await call_next(request)

    for mount in tracking_mounts():
        app.include_router(mount.router, prefix=mount.prefix)
    return app


def with_test_scope(app: FastAPI, choose: Callable[[Request], VisibilityScope | None]) -> None:
    """Test-only: after the gateway's authorizer, replace the request's scope with ``choose(request)`` (unless None).

    The authorizer sets a scope on every listing request (UNRESTRICTED for the administrator these tests
    use), so a scope put on the request before it would be overwritten.
    """
    authorizer = app.state.authorizer

    async def then_scope(request: Request) -> None:
        await authorizer(request)
        chosen = choose(request)
        if chosen is not None:
            setattr(request.state, REQUEST_STATE_KEY, chosen)

    app.dependency_overrides[authorizer] = then_scope


# One PostgreSQL database per test process, emptied between uses: creating, migrating and dropping a
# database per test costs about two seconds, emptying it a few milliseconds.
_shared_postgres: dict[str, object] = {}


def _empty_postgres_database() -> str:
    """The URI of this process's test database, holding exactly what a fresh migration leaves."""
    if "uri" not in _shared_postgres:
        database = fresh_postgres_database()
        uri = database.__enter__()
        atexit.register(database.__exit__, None, None, None)
        engine = make_engine(uri)
        atexit.register(engine.dispose)  # atexit runs in reverse: dispose, then drop
        upgrade_database(engine)
        _shared_postgres.update(uri=uri, engine=engine)
        return uri
    engine = _shared_postgres["engine"]
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE")
        # What the initial migration inserts.
        now = now_ms()
        conn.execute(insert(experiments).values(experiment_id=0, name="Default",
                                                artifact_location="mlflow-artifacts:/0", lifecycle_stage="active",
                                                creation_time=now, last_update_time=now))
    return _shared_postgres["uri"]


@contextmanager
def tracking_client(backend: str, tmp_path: Path) -> Iterator[TestClient]:
    """A TestClient over a tracking app on an empty, migrated database of ``backend`` ("sqlite" or "postgresql")."""
    if backend == "postgresql":
        app = build_tracking_app(_empty_postgres_database(), tmp_path / "artifacts")
    else:
        app = build_tracking_app(f"sqlite:///{tmp_path / 'tracking.db'}", tmp_path / "artifacts")
    try:
        with TestClient(app, base_url="http://127.0.0.1:5000") as client:
            client.backend = backend
            yield client
    finally:
        app.state.tracking.dispose()
