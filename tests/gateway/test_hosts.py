"""Host allowlist: DNS-rebinding lookalikes are refused, real names and addresses pass, /health always."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from gateway.middleware.hosts import HostAllowlist, HostAllowlistMiddleware
from gateway.settings import SettingsError
from tests.gateway.network_apps import EchoApp


@pytest.fixture
def host_client():
    """Build a TestClient over EchoApp behind a host allowlist of the given entries."""

    def build(*entries: str) -> TestClient:
        return TestClient(HostAllowlistMiddleware(EchoApp(), HostAllowlist(entries)))

    return build


LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


@pytest.mark.parametrize("host", [
    "localhost", "LOCALHOST:5000", "localhost.", "127.0.0.1", "127.0.0.1:5000", "[::1]", "[::1]:5000",
])
def test_loopback_names_and_addresses_are_allowed(host_client, host):
    response = host_client(*LOOPBACK).get("/api/x", headers={"host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("host", [
    "10.rebind.evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "evil.example", "127.1",
    "0177.0.0.1", "[::2]", "127.0.0.2", "localhost:5000:evil", "",
])
def test_lookalike_hosts_are_refused_mlflow_style(host_client, host):
    response = host_client(*LOOPBACK).get("/api/x", headers={"host": host})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert "allowed hosts" in body["message"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_health_is_reachable_for_probes_under_any_host(host_client):
    client = host_client(*LOOPBACK)
    assert client.get("/health", headers={"host": "10.0.0.7:5000"}).status_code == 200
    assert client.get("/healthz", headers={"host": "10.0.0.7:5000"}).status_code == 400


@pytest.mark.parametrize(("host", "status"), [
    ("mlflow.example.org", 200), ("MLflow.Example.org:443", 200), ("a.corp.example", 200),
    ("a.b.corp.example", 200), ("corp.example", 400), ("evilcorp.example", 400),
    ("a.corp.example.evil.test", 400), ("mlflow.example.org.evil.test", 400),
    ("10.0.0.5", 200), ("10.0.0.5:5000", 200), ("10.0.0.50", 400), ("10.0.0.5.evil.test", 400),
    ("[2001:db8::1]:8443", 200), ("[2001:db8:0:0::1]", 200), ("[::ffff:10.0.0.5]", 200),
])
def test_configured_names_suffixes_and_addresses(host_client, host, status):
    client = host_client("mlflow.example.org", "*.corp.example", "10.0.0.5", "[2001:db8::1]")
    assert client.get("/", headers={"host": host}).status_code == status


def test_two_host_headers_are_refused():
    app = HostAllowlistMiddleware(EchoApp(), HostAllowlist(LOOPBACK))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"localhost"),
                                                                     (b"host", b"evil.example")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400


# Through the app factory: defaults, the policy file and the CLI flag.

def test_default_allowlist_when_bound_to_loopback(app_factory):
    with TestClient(app_factory(), base_url="http://127.0.0.1:5000") as client:
        assert client.get("/version", headers={"host": "LOCALHOST:5000"}).status_code == 200
        assert client.get("/version", headers={"host": "[::1]:5000"}).status_code == 200
        refused = client.get("/version", headers={"host": "10.rebind.evil.example"})
        assert refused.status_code == 400
        assert refused.json()["error_code"] == "BAD_REQUEST"


def test_non_loopback_bind_without_allowlist_refuses_to_start(app_factory):
    with pytest.raises(SettingsError) as info:
        app_factory(host="0.0.0.0")
    assert any(p.startswith("--allowed-hosts") for p in info.value.problems)


def test_non_loopback_bind_with_allowlist_starts_and_enforces_it(app_factory):
    app = app_factory(host="0.0.0.0", allowed_hosts=("mlflow.example.org",))
    with TestClient(app, base_url="http://mlflow.example.org") as client:
        assert client.get("/version").status_code == 200
        assert client.get("/version", headers={"host": "localhost"}).status_code == 400


def test_policy_file_allowlist_and_cli_override(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  allowed_hosts: [files.example.org]\n")
    app = app_factory(host="0.0.0.0", policy_file=str(policy))
    with TestClient(app, base_url="http://files.example.org") as client:
        assert client.get("/version").status_code == 200
    overridden = app_factory(host="0.0.0.0", policy_file=str(policy), allowed_hosts=("cli.example.org",))
    with TestClient(overridden, base_url="http://files.example.org") as client:
        assert client.get("/version").status_code == 400
        assert client.get("/version", headers={"host": "cli.example.org"}).status_code == 200


def test_bad_cli_entries_are_all_listed_naming_the_flag(app_factory):
    with pytest.raises(SettingsError) as info:
        app_factory(allowed_hosts=("10.*", "*", "ok.example.org", "*.com"))
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("--allowed-hosts: entry 0: '10.*'")
    assert problems[1].startswith("--allowed-hosts: entry 1: '*' would accept any Host")
    assert problems[2].startswith("--allowed-hosts: entry 3: '*.com' is too broad")
