"""Security headers: on every response, strict CSP on HTML, HSTS only over HTTPS (direct or trusted proxy)."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.testclient import TestClient

from gateway.middleware.headers import HeaderPolicy, SecurityHeadersMiddleware
from gateway.middleware.proxies import TrustedProxyMiddleware
from tests.gateway.network_apps import EchoApp

CSP = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"


@pytest.fixture
def headers_client():
    """Build a TestClient over EchoApp behind the security-headers layer (and a trusted-proxy layer)."""

    def build(echo: EchoApp | None = None, *, frame_ancestors: str = "none", base_url: str = "http://testserver",
              peer: str = "127.0.0.1") -> TestClient:
        policy = HeaderPolicy.build(frame_ancestors=frame_ancestors, referrer_policy="no-referrer",
                                    content_security_policy=CSP, hsts_max_age=31536000,
                                    hsts_include_subdomains=False)
        app = SecurityHeadersMiddleware(echo or EchoApp(), policy)
        app = TrustedProxyMiddleware(app, (ipaddress.ip_network("10.0.0.0/8"),))
        return TestClient(app, base_url=base_url, client=(peer, 40000))

    return build


def test_api_response_headers(headers_client):
    response = headers_client().get("/api/2.0/mlflow/experiments/get")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "strict-transport-security" not in response.headers


def test_html_pages_get_the_strict_csp(headers_client):
    response = headers_client(EchoApp(content_type="text/html; charset=utf-8")).get("/login")
    assert response.headers["content-security-policy"] == CSP + "; frame-ancestors 'none'"


def test_frame_ancestors_self(headers_client):
    response = headers_client(EchoApp(content_type="text/html"), frame_ancestors="self").get("/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["content-security-policy"].endswith("frame-ancestors 'self'")


def test_headers_the_app_set_itself_are_kept(headers_client):
    echo = EchoApp(extra_headers={"Cache-Control": "public, max-age=3600"})
    assert headers_client(echo).get("/static/app.js").headers["cache-control"] == "public, max-age=3600"


@pytest.mark.parametrize("value", ["no-cache", "private, no-cache", "private, max-age=60", "max-age=0"])
def test_a_route_cannot_let_caches_store_private_answers(headers_client, value):
    """Only no-store or an explicit public answer survives: anything else a route sets becomes no-store."""
    echo = EchoApp(extra_headers={"Cache-Control": value})
    response = headers_client(echo).get("/api/2.0/mlflow-artifacts/artifacts/model.pkl")
    assert response.headers.get_list("cache-control") == ["no-store"]


def test_a_route_may_tighten_cache_control(headers_client):
    echo = EchoApp(extra_headers={"Cache-Control": "private, no-store"})
    assert headers_client(echo).get("/x").headers.get_list("cache-control") == ["private, no-store"]


def test_artifact_downloads_are_not_stored(client):
    """Every authenticated answer, artifact files included, carries no-store (SECURITY.md)."""
    run = client.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    path = f"/api/2.0/mlflow-artifacts/artifacts/{run['artifact_uri'].removeprefix('mlflow-artifacts:/')}/notes.txt"
    assert client.put(path, content=b"private").status_code == 200
    download = client.get(path)
    assert download.status_code == 200, download.text
    assert download.content == b"private"
    assert download.headers.get_list("cache-control") == ["no-store"]
    listed = client.get("/get-artifact", params={"run_id": run["run_id"], "path": "notes.txt"})
    assert listed.status_code == 200, listed.text
    assert listed.headers.get_list("cache-control") == ["no-store"]


def test_hsts_over_direct_https(headers_client):
    response = headers_client(base_url="https://mlflow.example.org").get("/")
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_hsts_when_a_trusted_proxy_terminated_tls(headers_client):
    response = headers_client(peer="10.0.0.2").get("/", headers={"x-forwarded-proto": "https"})
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_no_hsts_when_an_untrusted_peer_claims_https(headers_client):
    response = headers_client(peer="198.51.100.7").get("/", headers={"x-forwarded-proto": "https"})
    assert "strict-transport-security" not in response.headers


def test_factory_app_sends_them_on_errors_too(client, tmp_path):
    response = client.get("/api/2.0/mlflow/no-such-thing")
    assert response.status_code in (401, 404)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_policy_file_header_settings(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  headers:\n    frame_ancestors: self\n    referrer_policy: same-origin\n"
                      "    hsts_max_age: 600\n    hsts_include_subdomains: true\n")
    with TestClient(app_factory(policy_file=str(policy)), base_url="https://127.0.0.1:5000") as client:
        response = client.get("/health")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
