"""Cross-site write protection: browsers on other sites cannot change state; SDK clients are unaffected."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.testclient import TestClient

from gateway.middleware.cross_site import CrossSiteWriteMiddleware
from gateway.middleware.proxies import TrustedProxyMiddleware
from tests.gateway.network_apps import EchoApp

SELF = "http://127.0.0.1:5000"
FRONTEND = "https://ui.example.org"


@pytest.fixture
def write_app():
    """Build (EchoApp, TestClient) with cross-site protection allowing the given CORS origins."""

    def build(*origins: str) -> tuple[EchoApp, TestClient]:
        echo = EchoApp()
        return echo, TestClient(CrossSiteWriteMiddleware(echo, frozenset(origins)), base_url=SELF)

    return build


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_foreign_origin_write_is_refused_and_changes_nothing(write_app, method):
    echo, client = write_app(FRONTEND)
    response = client.request(method, "/api/2.0/mlflow/experiments/create",
                              headers={"origin": "https://evil.example"}, content=b"{}")
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "https://evil.example" in response.json()["message"]
    assert echo.calls == 0


@pytest.mark.parametrize("origin", ["null", "garbage", "http://127.0.0.1:5001", "https://127.0.0.1:5000",
                                    "http://localhost:5000"])
def test_null_malformed_and_near_miss_origins_are_refused(write_app, origin):
    echo, client = write_app()
    assert client.post("/x", headers={"origin": origin}).status_code == 403
    assert echo.calls == 0


def test_same_origin_and_configured_origins_may_write(write_app):
    echo, client = write_app(FRONTEND)
    assert client.post("/x", headers={"origin": SELF}).status_code == 200
    assert client.post("/x", headers={"origin": "http://127.0.0.1:5000"}).status_code == 200
    # A configured frontend on another site sends Sec-Fetch-Site: cross-site together with its Origin.
    assert client.post("/x", headers={"origin": FRONTEND, "sec-fetch-site": "cross-site"}).status_code == 200
    assert echo.calls == 3


def test_clients_without_origin_are_unaffected(write_app):
    echo, client = write_app()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/x", headers={"user-agent": "mlflow-python-client/3.17.2"}).status_code == 200
    assert echo.calls == 4


def test_fetch_metadata_cross_site_without_origin_is_refused(write_app):
    echo, client = write_app()
    response = client.post("/x", headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    assert "Sec-Fetch-Site" in response.json()["message"]
    assert client.post("/x", headers={"sec-fetch-site": "same-origin"}).status_code == 200
    assert client.post("/x", headers={"sec-fetch-site": "none"}).status_code == 200
    assert echo.calls == 2


def test_reads_are_not_blocked(write_app):
    _, client = write_app()
    headers = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    assert client.get("/x", headers=headers).status_code == 200


def test_https_origin_behind_trusted_proxy_is_same_origin():
    # TLS ends at the proxy: the browser's Origin is https, and only a trusted X-Forwarded-Proto says so.
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    app = TrustedProxyMiddleware(CrossSiteWriteMiddleware(EchoApp(), frozenset()), trusted)
    headers = {"origin": "https://mlflow.example.org", "host": "mlflow.example.org",
               "x-forwarded-proto": "https"}
    behind_proxy = TestClient(app, client=("10.1.2.3", 40000))
    assert behind_proxy.post("/x", headers=headers).status_code == 200
    direct = TestClient(app, client=("198.51.100.9", 40000))
    assert direct.post("/x", headers=headers).status_code == 403


def test_factory_app_refuses_cross_site_writes_before_authentication(client):
    # 403 from the ring rather than 401 from authentication: the request never reached the inner layers.
    refused = client.post("/api/2.0/mlflow/experiments/create", json={"name": "csrf-victim"},
                          headers={"origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("Cross-site POST refused")
    lookup = client.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "csrf-victim"})
    assert lookup.status_code == 404
    # The same request from the SDK (no Origin) goes through.
    assert client.post("/api/2.0/mlflow/experiments/create", json={"name": "csrf-victim"}).status_code == 200
