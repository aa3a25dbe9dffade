"""Size limits: bodies (counted while streaming), query strings, headers; JSON depth in the parser."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from gateway.middleware.limits import SizeLimitMiddleware, SizeLimits
from tests.conftest import TEST_ADMIN_TOKEN
from tests.gateway.network_apps import EchoApp

MiB = 1024 * 1024
ARTIFACT_PATH = "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model.bin"


@pytest.fixture
def limited():
    """Build (EchoApp, TestClient) behind size limits; keyword arguments override the defaults."""

    def build(**overrides) -> tuple[EchoApp, TestClient]:
        values = {"max_body_bytes": 16 * MiB, "max_artifact_bytes": 64 * MiB, "max_query_bytes": 16 * 1024,
                  "max_header_bytes": 32 * 1024, "max_header_count": 100, **overrides}
        echo = EchoApp()
        return echo, TestClient(SizeLimitMiddleware(echo, SizeLimits(**values)))

    return build


def chunks(total: int, size: int = 256 * 1024):
    sent = 0
    while sent < total:
        step = min(size, total - sent)
        sent += step
        yield b"x" * step


def test_declared_20_mib_body_is_refused_before_reading(limited):
    echo, client = limited()
    response = client.post("/api/2.0/mlflow/runs/log-batch", content=b"{" + b" " * (20 * MiB) + b"}")
    assert response.status_code == 413
    assert response.json() == {"error_code": "RESOURCE_EXHAUSTED",
                               "message": f"Request body is larger than the limit of {16 * MiB} bytes."}
    assert echo.calls == 0


def test_streamed_20_mib_body_without_length_is_cut_off(limited):
    echo, client = limited()
    response = client.post("/api/2.0/mlflow/runs/log-batch", content=chunks(20 * MiB))
    assert response.status_code == 413
    assert response.json()["error_code"] == "RESOURCE_EXHAUSTED"
    assert echo.calls == 0


def test_body_at_the_limit_passes(limited):
    echo, client = limited(max_body_bytes=4096)
    response = client.post("/x", content=chunks(4096, 1000))
    assert echo.calls == 1
    assert response.status_code == 200
    assert response.json()["body_bytes"] == 4096


def test_artifact_uploads_have_their_own_limit(limited):
    echo, client = limited(max_body_bytes=4096, max_artifact_bytes=64 * 1024)
    assert client.put(ARTIFACT_PATH, content=b"a" * 32 * 1024).status_code == 200
    assert client.put(ARTIFACT_PATH.replace("/api/", "/ajax-api/"), content=b"a" * 32 * 1024).status_code == 200
    assert client.put(ARTIFACT_PATH, content=chunks(65 * 1024, 8192)).status_code == 413
    # Only uploads: the same size to an API route is still refused.
    assert client.post("/api/2.0/mlflow/runs/create", content=b"a" * 32 * 1024).status_code == 413
    assert client.post(ARTIFACT_PATH, content=b"a" * 32 * 1024).status_code == 413
    assert echo.calls == 2


def test_long_query_string_is_refused(limited):
    echo, client = limited(max_query_bytes=1024)
    assert client.get("/x", params={"filter": "a" * 900}).status_code == 200
    response = client.get("/x", params={"filter": "a" * 2000})
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "Query string" in response.json()["message"]
    assert echo.calls == 1


def test_oversized_and_too_many_headers_are_refused(limited):
    echo, client = limited(max_header_bytes=4096, max_header_count=20)
    assert client.get("/x", headers={"x-big": "a" * 5000}).status_code == 400
    many = {f"x-h{i}": "1" for i in range(25)}
    response = client.get("/x", headers=many)
    assert response.status_code == 400
    assert "more than 20 headers" in response.json()["message"]
    assert client.get("/x", headers={"x-ok": "a" * 1000}).status_code == 200
    assert echo.calls == 1


# JSON nesting depth, enforced by the request parser with the configured limit.

def nested(depth: int, name: str) -> dict:
    """An experiments/create body whose nesting is ``depth`` levels deep (an ignored extra field)."""
    inner: dict = {}
    for _ in range(depth - 2):
        inner = {"x": inner}
    return {"name": name, "extra": inner}


def test_200_deep_json_is_a_400_never_a_500(client):
    response = client.post("/api/2.0/mlflow/experiments/create", content=json.dumps(nested(200, "deep")),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                               "message": "Invalid JSON: nesting deeper than 64 levels."}
    assert client.get("/api/2.0/mlflow/experiments/get-by-name",
                      params={"experiment_name": "deep"}).status_code == 404


def test_json_depth_limit_comes_from_the_policy_file(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  limits:\n    max_json_depth: 5\n")
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        client.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        refused = client.post("/api/2.0/mlflow/experiments/create", json=nested(6, "six"))
        assert refused.status_code == 400
        assert refused.json()["message"] == "Invalid JSON: nesting deeper than 5 levels."
        assert client.post("/api/2.0/mlflow/experiments/create", json=nested(5, "five")).status_code == 200


def test_factory_app_refuses_20_mib_json(client):
    response = client.post("/api/2.0/mlflow/runs/log-batch", content=b"[" * (20 * MiB),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_code"] == "RESOURCE_EXHAUSTED"


def test_limits_come_from_the_policy_file(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  limits:\n    max_body_bytes: 2 KiB\n    max_query_bytes: 512\n")
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        assert client.post("/api/2.0/mlflow/runs/create", content=b" " * 3000).status_code == 413
        assert client.get("/version", params={"q": "a" * 600}).status_code == 400
        assert client.get("/version", params={"q": "a" * 100}).status_code == 200
