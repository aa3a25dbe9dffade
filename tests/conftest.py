"""Shared fixtures: an in-process app built through the factory, and real server processes."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from auth.store import IdentityStore, now_ms
from auth.tokens import new_token, new_token_id, token_hash
from gateway.app import create_app
from gateway.db import upgrade_database
from gateway.settings import Settings
from tests.prerequisites import pytest_sessionstart, pytest_terminal_summary  # noqa: F401 (hooks)
from tests.services import free_port, fresh_postgres_database
from tracking.db.engine import make_engine

BACKENDS = ["sqlite", "postgresql"]

# The server requires authentication: every app and server built here has this administrator.
TEST_ADMIN_USERNAME = "admin"
TEST_ADMIN_PASSWORD = "adm-" + secrets.token_urlsafe(24)
TEST_SECRET_KEY = secrets.token_urlsafe(48)
# In-process apps get a token for the admin (no bcrypt per app); the `client` fixture sends it.
TEST_ADMIN_TOKEN = new_token()
_admin_hash: list[str] = []


def seed_test_admin(engine) -> None:
    """Create the test administrator and its token in a freshly migrated database (idempotent)."""
    store = IdentityStore(engine)
    if store.user_by_name(TEST_ADMIN_USERNAME) is not None:
        return
    if not _admin_hash:
        from auth.passwords import PasswordHasher

        _admin_hash.append(PasswordHasher(rounds=12).hash(TEST_ADMIN_PASSWORD))
    user = store.create_user(TEST_ADMIN_USERNAME, _admin_hash[0], is_admin=True)
    store.create_token(new_token_id(), user.id, "tests", token_hash(TEST_ADMIN_TOKEN), read_only=False,
                       expires_at=now_ms() + 86_400_000, created_by=user.id)


# The one switch that runs the suite on PostgreSQL: MLGATE_TEST_BACKEND=postgresql. Every fixture that picks a
# database (settings, database_uri, the e2e servers) then gets a fresh PostgreSQL database instead of a SQLite file.
DEFAULT_BACKEND = os.environ.get("MLGATE_TEST_BACKEND", "sqlite")
if DEFAULT_BACKEND not in BACKENDS:
    raise pytest.UsageError(f"MLGATE_TEST_BACKEND must be one of {BACKENDS}, got {DEFAULT_BACKEND!r}")


# MLGATE_TEST_SWITCHED_ONLY=1 (CI's PostgreSQL pass): run only the tests whose database follows the switch (they
# use the `settings` fixture or `database_uri`, or are marked `backend_switch`, and are not parametrized over the
# backends themselves); every other test would run exactly as it did in the first pass.


def follows_backend_switch(item: pytest.Item) -> bool:
    """Whether MLGATE_TEST_BACKEND changes the database this test runs on."""
    if item.get_closest_marker("backend_switch"):
        return True
    if item.get_closest_marker("database_incidental"):
        return False  # its database only holds the rows that carry what it tests (artifact paths and bytes)
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(isinstance(value, str) and value in BACKENDS for value in params.values()):
        return False  # runs on each backend already
    fixtures = getattr(item, "fixturenames", ())
    return "settings" in fixtures or "database_uri" in fixtures


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MLGATE_TEST_SWITCHED_ONLY") != "1":
        return
    keep = [item for item in items if follows_backend_switch(item)]
    config.hook.pytest_deselected(items=[item for item in items if not follows_backend_switch(item)])
    items[:] = keep


@contextmanager
def default_database(tmp_path: Path, backend: str = DEFAULT_BACKEND) -> Iterator[str]:
    """A fresh database of the chosen backend: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if backend == "postgresql":
        with fresh_postgres_database() as uri:
            yield uri
    else:
        yield f"sqlite:///{tmp_path / 'mlgate.db'}"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for an isolated app: a fresh database (SQLite by default) and an artifact root under tmp_path."""
    with default_database(tmp_path) as uri:
        yield Settings(
            backend_store_uri=uri,
            artifacts_destination=str(tmp_path / "artifacts"),
            data_dir=str(tmp_path),
            dev_mode=True,
            secret_key=TEST_SECRET_KEY,
            web_ui="mlgate",  # mlgate's own pages at /, whether or not MLflow's UI is installed
        )


_sqlite_template: list[Path] = []


def _migrated_sqlite_copy(target: Path) -> None:
    """Fill the new file ``target`` with a migrated, seeded SQLite database: migrated once per process, then copied
    (running every migration for every in-process test's fresh file was most of those tests' setup)."""
    if not _sqlite_template:
        path = Path(tempfile.mkdtemp(prefix="mlgate-test-template-")) / "migrated.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade_database(engine)
            seed_test_admin(engine)
        finally:
            engine.dispose()
        atexit.register(shutil.rmtree, path.parent, ignore_errors=True)
        _sqlite_template.append(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(_sqlite_template[0])) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


def migrated(settings: Settings) -> Settings:
    """Apply migrations to the settings' database and return the settings."""
    uri = settings.backend_store_uri
    if uri.startswith("sqlite:///") and "?" not in uri and not Path(uri.removeprefix("sqlite:///")).exists():
        _migrated_sqlite_copy(Path(uri.removeprefix("sqlite:///")))
        return settings
    engine = make_engine(settings.backend_store_uri)
    try:
        upgrade_database(engine)
        seed_test_admin(engine)
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def app_factory(settings: Settings) -> Callable[..., object]:
    """Build an app through ``create_app``; keyword arguments override settings fields."""

    def build(**overrides):
        return create_app(migrated(replace(settings, **overrides)))

    return build


@pytest.fixture
def client(app_factory) -> Iterator[TestClient]:
    """A TestClient over a fresh app with default settings, authenticated as the test administrator."""
    with TestClient(app_factory(), base_url="http://127.0.0.1:5000") as c:
        c.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        yield c


@dataclass
class LiveServer:
    """A real ``mlgate server`` process."""

    url: str
    workdir: Path
    backend_store_uri: str
    process: subprocess.Popen
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    admin_username: str = TEST_ADMIN_USERNAME
    admin_password: str = TEST_ADMIN_PASSWORD

    @property
    def admin_auth(self) -> tuple[str, str]:
        """(username, password) of the bootstrapped administrator, e.g. for ``httpx.get(..., auth=...)``."""
        return (self.admin_username, self.admin_password)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        """The server's combined output so far."""
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_server(workdir: Path, backend_store_uri: str, *extra_args: str,
                 env: dict[str, str] | None = None, port: int | None = None,
                 timeout: float = 60) -> LiveServer:
    """Start ``mlgate server`` in ``workdir`` and wait until /health answers."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "gateway.cli", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", str(workdir / "artifacts"), *extra_args]
    # The first start bootstraps a known administrator; a shared secret lets several processes share sessions.
    full_env = {**os.environ, "MLGATE_ADMIN_USERNAME": TEST_ADMIN_USERNAME,
                "MLGATE_ADMIN_PASSWORD": TEST_ADMIN_PASSWORD, "MLGATE_SECRET_KEY": TEST_SECRET_KEY,
                # mlgate's own pages at / unless a test asks for MLflow's UI (MLGATE_WEB_UI=mlflow)
                "MLGATE_WEB_UI": "mlgate", **(env or {})}
    log = open(workdir / "server.log", "ab")
    proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = LiveServer(f"http://127.0.0.1:{port}", workdir, backend_store_uri, proc, list(extra_args),
                        env or {}, full_env["MLGATE_ADMIN_USERNAME"], full_env["MLGATE_ADMIN_PASSWORD"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlgate server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"mlgate server did not become healthy:\n{server.log()}")


@pytest.fixture
def database_uri(request, tmp_path: Path) -> Iterator[str]:
    """A fresh database URI for the backend named by the test's ``backend`` parameter (default: the switch)."""
    with default_database(tmp_path, getattr(request, "param", DEFAULT_BACKEND)) as uri:
        yield uri


@pytest.fixture
def live_server(tmp_path: Path, database_uri: str) -> Iterator[LiveServer]:
    """A real server on a free loopback port over a fresh database."""
    server = start_server(tmp_path / "server", database_uri)
    yield server
    server.stop()
