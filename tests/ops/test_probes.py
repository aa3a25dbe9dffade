"""/health (liveness) and /ready (database and Redis reachable), against real PostgreSQL and Redis servers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from tests.conftest import migrated
from tests.services import POSTGRES_URI, free_port, fresh_postgres_database, port_open, unavailable

LOCAL = "http://127.0.0.1:5000"


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A private redis-server process (so the test can stop it); yields (url, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed", "apt-get install -y redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _ready(client: TestClient, **headers: str):
    return client.get("/ready", headers=headers)


def test_liveness_and_readiness_answer_anonymous_probes_under_any_host(app_factory):
    with TestClient(app_factory(), base_url=LOCAL) as client:
        for host in ("127.0.0.1:5000", "10.1.2.3:5000", "mlgate-0.mlgate.svc.cluster.local"):
            assert client.get("/health", headers={"Host": host}).status_code == 200
            ready = _ready(client, Host=host)
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
        # Everything else still checks Host (DNS rebinding).
        assert client.get("/version", headers={"Host": "10.1.2.3:5000"}).status_code == 400


def test_ready_names_redis_when_it_goes_away(app_factory, own_redis):
    url, proc = own_redis
    with TestClient(app_factory(redis_url=url), base_url=LOCAL) as client:
        ready = _ready(client)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        proc.kill()
        proc.wait()
        time.sleep(1.1)  # the last answer is kept for a second
        down = _ready(client)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        body = down.json()
        assert body["checks"] == {"database": "ok", "redis": "unavailable"}
        assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert body["message"] == "Not ready: redis unavailable."
        assert url.rsplit(":", 1)[1].split("/")[0] not in down.text  # no port, host or URL
        assert client.get("/health").status_code == 200  # alive, just not ready


def test_ready_names_the_database_when_it_goes_away(settings):
    with fresh_postgres_database() as uri:
        app = create_app(migrated(replace(settings, backend_store_uri=uri)))
        with TestClient(app, base_url=LOCAL) as client:
            assert _ready(client).json()["checks"] == {"database": "ok"}
            name = uri.rsplit("/", 1)[1]
            with psycopg.connect(POSTGRES_URI, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            time.sleep(1.1)
            down = _ready(client)
            assert down.status_code == 503
            assert down.json()["checks"] == {"database": "unavailable"}
            assert down.json()["message"] == "Not ready: database unavailable."
            for secret in (name, "postgres", "5432", "127.0.0.1"):
                assert secret not in down.text
