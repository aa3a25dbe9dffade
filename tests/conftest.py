"""Shared fixtures: an in-process app built through the factory, and real server processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import upgrade_database
from gateway.settings import Settings
from tests.services import free_port, fresh_postgres_database
from tracking.db.engine import make_engine

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an isolated app: a SQLite file and an artifact root under tmp_path."""
    return Settings(
        backend_store_uri=f"sqlite:///{tmp_path / 'mlgate.db'}",
        artifacts_destination=str(tmp_path / "artifacts"),
        data_dir=str(tmp_path),
        dev_mode=True,
    )


def migrated(settings: Settings) -> Settings:
    """Apply migrations to the settings' database and return the settings."""
    engine = make_engine(settings.backend_store_uri)
    try:
        upgrade_database(engine)
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
    """A TestClient over a fresh app with default settings."""
    with TestClient(app_factory(), base_url="http://127.0.0.1:5000") as c:
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
    full_env = {**os.environ, **(env or {})}
    log = open(workdir / "server.log", "ab")
    proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = LiveServer(f"http://127.0.0.1:{port}", workdir, backend_store_uri, proc, list(extra_args),
                        env or {})
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
    """A fresh database URI for the backend named by the test's ``backend`` parameter (default SQLite)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        with fresh_postgres_database() as uri:
            yield uri
    else:
        yield f"sqlite:///{tmp_path / 'mlgate.db'}"


@pytest.fixture
def live_server(tmp_path: Path, database_uri: str) -> Iterator[LiveServer]:
    """A real server on a free loopback port over a fresh database."""
    server = start_server(tmp_path / "server", database_uri)
    yield server
    server.stop()
