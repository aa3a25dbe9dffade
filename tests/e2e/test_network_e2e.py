"""The network ring over real sockets: real servers, real Redis, the real mlflow client."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import start_server
from tests.services import REDIS_URL, free_port, require_redis

pytestmark = pytest.mark.e2e

REDIS_DB = 7


def test_two_servers_sharing_redis_have_one_budget(tmp_path: Path):
    require_redis()
    import redis

    namespace = f"e2e-{uuid.uuid4().hex[:10]}"
    redis_url = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{REDIS_DB}"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"network:\n  rate_limit:\n    per_client: 6/minute\n    namespace: {namespace}\n")
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first = start_server(tmp_path / "a", database, "--redis-url", redis_url, "--policy", str(policy))
    try:
        second = start_server(tmp_path / "b", database, "--redis-url", redis_url, "--policy", str(policy))
        try:
            statuses = []
            for i in range(8):
                server = (first, second)[i % 2]
                statuses.append(httpx.get(server.url + "/version", timeout=10).status_code)
            # Six requests in total, whichever process served them; then both refuse.
            assert statuses == [200] * 6 + [429, 429]
            refused = httpx.get(first.url + "/version", timeout=10)
            assert refused.status_code == 429
            assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["ratelimit-limit"] == "6"
            # Probes are never counted.
            assert httpx.get(second.url + "/health", timeout=10).status_code == 200
            # Each process logged the limiter it actually runs.
            for server in (first, second):
                assert f"rate limiter: {{'enabled': True, 'storage': '{redis_url}'" in server.log()
        finally:
            second.stop()
    finally:
        first.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"*{namespace}*", count=1000))
        assert keys, "the servers kept their counters in Redis"
        client.delete(*keys)
        client.close()


def test_non_loopback_bind_without_allowlist_refuses_to_start(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "server", "--host", "0.0.0.0", "--port", str(free_port()),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}", "--artifacts-destination", str(tmp_path / "a")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--allowed-hosts" in result.stderr


def test_real_socket_refusals(e2e_server):
    url = e2e_server.url
    rebind = httpx.get(url + "/version", headers={"host": "10.rebind.evil.example"}, timeout=10)
    assert rebind.status_code == 400
    assert rebind.json()["error_code"] == "BAD_REQUEST"
    assert httpx.get(url + "/version", headers={"host": "LOCALHOST:5000"}, timeout=10).status_code == 200

    cross_site = httpx.post(url + "/api/2.0/mlflow/experiments/create", json={"name": "x"},
                            headers={"origin": "https://evil.example"}, auth=e2e_server.admin_auth, timeout=10)
    assert cross_site.status_code == 403

    def body():
        for _ in range(20):
            yield b" " * (1024 * 1024)

    # Chunked, so no Content-Length to check up front: the limit is enforced while streaming.
    try:
        too_big = httpx.post(url + "/api/2.0/mlflow/runs/log-batch", content=body(),
                             auth=e2e_server.admin_auth, timeout=30)
    except httpx.TransportError:
        pytest.fail("the server dropped the connection instead of answering 413")
    assert too_big.status_code == 413
    assert too_big.json()["error_code"] == "RESOURCE_EXHAUSTED"
    headers = httpx.get(url + "/health", timeout=10).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_mlflow_client_works_with_the_default_protections(mlflow_client, unique_name):
    import mlflow

    experiment_id = mlflow_client.create_experiment(unique_name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("alpha", "0.5")
        for step in range(50):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({f"m{i}": float(i) for i in range(100)})
        mlflow.set_tags({"team": "network", "stage": "e2e"})
    fetched = mlflow_client.get_run(run.info.run_id)
    assert fetched.data.params == {"alpha": "0.5"}
    assert fetched.data.tags["team"] == "network"
    assert len(mlflow_client.get_metric_history(run.info.run_id, "loss")) == 50
    found = mlflow_client.search_runs([experiment_id], filter_string="params.alpha = '0.5'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
