"""Trusted proxies: forwarding headers count only from configured networks; the client address is decided once."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.testclient import TestClient

from gateway.middleware.proxies import TrustedProxyMiddleware
from gateway.middleware.ratelimit import RateLimitMiddleware, RequestRateLimiter
from tests.gateway.network_apps import EchoApp

PROXY_NET = "10.0.0.0/8"


def rate_limiter(per_client: str) -> RequestRateLimiter:
    return RequestRateLimiter(enabled=True, storage_uri="memory://", strategy="fixed-window",
                              per_client=per_client, per_principal="1000/minute", sensitive="1000/minute",
                              sensitive_paths=(), namespace="test-proxies")


@pytest.fixture
def proxied():
    """Build a TestClient whose TCP peer is ``peer``, over EchoApp behind the proxy layer (and a rate limit)."""

    def build(peer: str, *, per_client: str | None = None, networks: tuple[str, ...] = (PROXY_NET,)) -> TestClient:
        app = EchoApp()
        if per_client is not None:
            app = RateLimitMiddleware(app, rate_limiter(per_client))
        app = TrustedProxyMiddleware(app, tuple(ipaddress.ip_network(n) for n in networks))
        return TestClient(app, client=(peer, 40000))

    return build


def test_untrusted_peer_forwarding_headers_are_ignored_and_removed(proxied):
    seen = proxied("198.51.100.7").get("/", headers={
        "x-forwarded-for": "203.0.113.1", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example"}).json()
    assert seen["client_ip"] == "198.51.100.7"
    assert seen["client"] == ["198.51.100.7", 40000]
    assert seen["scheme"] == "http"
    assert seen["host"] == "testserver"
    assert seen["forwarded"] == []


def test_spoofed_forwarded_for_cannot_dodge_the_rate_limit(proxied):
    client = proxied("198.51.100.7", per_client="3/minute")
    statuses = [client.get("/", headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_trusted_proxy_is_honoured(proxied):
    headers = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "mlflow.example.org"}
    seen = proxied("10.0.0.2").get("/", headers=headers).json()
    assert seen["client_ip"] == "203.0.113.9"
    assert seen["client"] == ["203.0.113.9", 0]
    assert seen["peer_ip"] == "10.0.0.2"
    assert seen["scheme"] == "https"
    assert seen["host"] == "mlflow.example.org"
    assert seen["forwarded"] == []


def test_chain_is_read_from_the_right_skipping_own_proxies(proxied):
    # The client prepended a fake entry; our two proxies appended the real client, then each other.
    seen = proxied("10.0.0.2").get("/", headers={"x-forwarded-for": "1.1.1.1, 203.0.113.9, 10.0.0.3"}).json()
    assert seen["client_ip"] == "203.0.113.9"


def test_multiple_forwarded_for_headers_form_one_chain(proxied):
    seen = proxied("10.0.0.2").get("/", headers=[("x-forwarded-for", "1.1.1.1"),
                                                 ("x-forwarded-for", "203.0.113.9")]).json()
    assert seen["client_ip"] == "203.0.113.9"


def test_garbage_in_the_chain_stops_at_the_last_known_hop(proxied):
    seen = proxied("10.0.0.2").get("/", headers={"x-forwarded-for": "203.0.113.9, not-an-ip, 10.0.0.3"}).json()
    assert seen["client_ip"] == "10.0.0.3"
    seen = proxied("10.0.0.2").get("/", headers={"x-forwarded-proto": "javascript",
                                                 "x-forwarded-host": "a b/c"}).json()
    assert seen["scheme"] == "http"
    assert seen["host"] == "testserver"


def test_trusted_proxy_clients_get_separate_budgets(proxied):
    client = proxied("10.0.0.2", per_client="2/minute")
    first = [client.get("/", headers={"x-forwarded-for": "203.0.113.1"}).status_code for _ in range(3)]
    second = [client.get("/", headers={"x-forwarded-for": "203.0.113.2"}).status_code for _ in range(2)]
    assert first == [200, 200, 429]
    assert second == [200, 200]


def test_ipv6_peer_and_mapped_addresses(proxied):
    seen = proxied("::ffff:10.0.0.2").get("/", headers={"x-forwarded-for": "2001:db8::7"}).json()
    assert seen["client_ip"] == "2001:db8::7"


def test_factory_app_uses_the_policy_file_networks(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  trusted_proxies: [10.0.0.0/8]\n  allowed_hosts: [mlflow.example.org]\n")
    app = app_factory(policy_file=str(policy))
    via_proxy = TestClient(app, base_url="http://internal:5000", client=("10.0.0.2", 40000))
    # The Host the allowlist checks is the one the trusted proxy forwarded.
    assert via_proxy.get("/version", headers={"x-forwarded-host": "mlflow.example.org"}).status_code == 200
    direct = TestClient(app, base_url="http://internal:5000", client=("198.51.100.7", 40000))
    assert direct.get("/version", headers={"x-forwarded-host": "mlflow.example.org"}).status_code == 400
