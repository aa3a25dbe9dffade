"""CORS: exact origins only; credentialed preflights answered for them and refused for everyone else."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from gateway.middleware.cors import CorsMiddleware, CorsPolicy
from gateway.settings import SettingsError
from tests.gateway.network_apps import EchoApp

APP_ORIGIN = "https://app.example.org"


@pytest.fixture
def cors_client():
    """Build a TestClient over EchoApp behind CORS with the given origins."""

    def build(*origins: str, credentials: bool = True) -> TestClient:
        policy = CorsPolicy.build(origins, allow_credentials=credentials,
                                  methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                                  headers=["Authorization", "Content-Type"], expose_headers=["X-Request-Id"],
                                  max_age=600)
        return TestClient(CorsMiddleware(EchoApp(), policy))

    return build


def preflight(client: TestClient, origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return client.options("/api/2.0/mlflow/runs/create", headers={
        "origin": origin, "access-control-request-method": method, "access-control-request-headers": headers})


def test_allowed_origin_gets_credentialed_cors_headers(cors_client):
    response = cors_client(APP_ORIGIN).get("/x", headers={"origin": APP_ORIGIN})
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Request-Id"
    assert "Origin" in response.headers["vary"]


@pytest.mark.parametrize("origin", [
    "https://evil.example", "http://app.example.org", "https://app.example.org:8443",
    "https://app.example.org.evil.example", "http://localhost:3000", "null", "not an origin",
])
def test_other_origins_get_no_cors_headers(cors_client, origin):
    response = cors_client(APP_ORIGIN).get("/x", headers={"origin": origin})
    assert response.status_code == 200  # the browser, not the server, withholds the body
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    assert "Origin" in response.headers["vary"]


def test_default_port_is_the_same_origin(cors_client):
    response = cors_client("https://app.example.org:443").get("/x", headers={"origin": APP_ORIGIN})
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN


def test_credentialed_preflight_from_allowed_origin(cors_client):
    response = preflight(cors_client(APP_ORIGIN), APP_ORIGIN)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"]
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert response.headers["access-control-max-age"] == "600"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:5000"])
def test_credentialed_preflight_from_foreign_origin_is_refused(cors_client, origin):
    client = cors_client(APP_ORIGIN)
    response = preflight(client, origin)
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_for_unlisted_method_or_header_is_refused(cors_client):
    client = cors_client(APP_ORIGIN)
    assert preflight(client, APP_ORIGIN, method="TRACE").status_code == 403
    refused = preflight(client, APP_ORIGIN, headers="x-custom-secret")
    assert refused.status_code == 403
    assert "x-custom-secret" in refused.json()["message"]


def test_wildcard_without_credentials_still_never_allows_null(cors_client):
    client = cors_client("*", credentials=False)
    response = client.get("/x", headers={"origin": "https://any.example"})
    assert response.headers["access-control-allow-origin"] == "https://any.example"
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-allow-origin" not in client.get("/x", headers={"origin": "null"}).headers


def test_requests_without_origin_are_untouched(cors_client):
    response = cors_client(APP_ORIGIN).get("/x")
    assert "access-control-allow-origin" not in response.headers
    assert "vary" not in response.headers


# Through the app factory.

def test_no_origin_is_allowed_by_default(client):
    response = client.get("/version", headers={"origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in response.headers


def test_cli_origins_are_served(app_factory):
    app = app_factory(cors_allowed_origins=(APP_ORIGIN,))
    with TestClient(app, base_url="http://127.0.0.1:5000") as client:
        response = preflight(client, APP_ORIGIN)
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN


def test_credentialed_wildcard_is_refused_at_startup(app_factory, tmp_path):
    with pytest.raises(SettingsError) as info:
        app_factory(cors_allowed_origins=("*", "null", "https://*.example.org"))
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["--cors-allowed-origins"] * 3
    assert "'*' together with allow_credentials" in problems[0]
    assert "'null' is the origin of sandboxed frames" in problems[1]
    assert "no wildcards" in problems[2]

    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  cors:\n    allowed_origins: ['*']\n")
    with pytest.raises(SettingsError) as info:
        app_factory(policy_file=str(policy))
    assert any("network.cors" in p and "allow_credentials" in p for p in info.value.problems)
