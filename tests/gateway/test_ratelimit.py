"""Rate limiting: per client address, stricter on sensitive paths, per principal; memory and Redis storage."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.middleware.ratelimit import (
    RateLimitMiddleware,
    RequestRateLimiter,
    limit_principal,
    redact_url,
)
from gateway.settings import SettingsError
from tests.gateway.network_apps import EchoApp
from tests.services import REDIS_URL, require_redis


@pytest.fixture(params=["memory://", "redis"])
def storage_uri(request) -> Iterator[str]:
    """Each test runs against in-process memory and against the real Redis."""
    if request.param == "redis":
        require_redis()
        yield REDIS_URL
    else:
        yield request.param


@pytest.fixture
def namespace(storage_uri) -> Iterator[str]:
    """A key namespace of this test's own; its Redis keys are deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    if storage_uri.startswith("redis"):
        import redis

        client = redis.Redis.from_url(storage_uri)
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def limited(storage_uri, namespace):
    """Build (limiter, TestClient) over EchoApp behind the rate limit middleware."""

    def build(per_client: str = "1000/minute", *, sensitive: str = "1000/minute", per_principal: str = "1000/minute",
              enabled: bool = True, strategy: str = "fixed-window") -> tuple[RequestRateLimiter, TestClient]:
        limiter = RequestRateLimiter(enabled=enabled, storage_uri=storage_uri, strategy=strategy,
                                     per_client=per_client, per_principal=per_principal, sensitive=sensitive,
                                     sensitive_paths=("/login", "/api/2.0/mlflow/users/"), namespace=namespace)
        return limiter, TestClient(RateLimitMiddleware(EchoApp(), limiter), client=("198.51.100.7", 40000))

    return build


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_budget_then_429_with_headers_and_mlflow_body(limited, strategy):
    _, client = limited("3/minute", strategy=strategy)
    assert [client.get("/api/x").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/x")
    assert refused.status_code == 429
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "3 per 1 minute" in refused.json()["message"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["ratelimit-reset"]) <= 60
    assert refused.headers["ratelimit-policy"] == "3;w=60"


def test_sensitive_paths_have_a_stricter_budget(limited):
    _, client = limited("100/minute", sensitive="2/minute")
    assert [client.post("/login").status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/api/2.0/mlflow/users/create").status_code == 429  # same sensitive budget
    assert client.get("/api/2.0/mlflow/experiments/search").status_code == 200
    # Reads of the same paths (the login page, the UI's users/current) stay on the general budget.
    assert client.get("/login").status_code == 200
    assert client.get("/api/2.0/mlflow/users/current").status_code == 200


def test_health_is_not_counted(limited):
    _, client = limited("1/minute")
    assert [client.get("/health").status_code for _ in range(5)] == [200] * 5
    assert client.get("/x").status_code == 200
    assert client.get("/x").status_code == 429


def test_addresses_have_separate_budgets(limited):
    _, first = limited("1/minute")
    second = TestClient(first.app, client=("198.51.100.8", 40000))
    assert first.get("/x").status_code == 200
    assert first.get("/x").status_code == 429
    assert second.get("/x").status_code == 200


def test_disabled_limiter_counts_nothing(limited):
    _, client = limited("1/minute", enabled=False)
    assert [client.get("/x").status_code for _ in range(3)] == [200, 200, 200]


def test_principal_hook_counts_per_principal(limited):
    limiter, _ = limited(per_principal="2/minute")
    scope = {"type": "http", "state": {"rate_limiter": limiter}}

    async def three(principal: str) -> list[bool]:
        return [await limit_principal(scope, principal) is None for _ in range(3)]

    assert asyncio.run(three("user-1")) == [True, True, False]
    assert asyncio.run(three("user-2")) == [True, True, False]


def test_principal_hook_refusal_is_a_complete_429(limited):
    limiter, _ = limited(per_principal="1/minute")
    scope = {"type": "http", "state": {"rate_limiter": limiter}}
    sent = []

    async def run():
        assert await limit_principal(scope, "user-1") is None
        refused = await limit_principal(scope, "user-1")

        async def send(message):
            sent.append(message)

        await refused.respond(send)

    asyncio.run(run())
    assert sent[0]["status"] == 429
    headers = dict(sent[0]["headers"])
    assert b"retry-after" in headers
    assert b"REQUEST_LIMIT_EXCEEDED" in sent[1]["body"]


def test_principal_hook_without_the_middleware_counts_nothing():
    assert asyncio.run(limit_principal({"type": "http"}, "user-1")) is None


# Configuration through the factory: explicit settings only, logged at startup.

def test_environment_and_dotenv_cannot_change_the_limiter(app_factory, tmp_path, monkeypatch):
    # slowapi would honour these; mlgate's limiter is configured only from its own settings.
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    monkeypatch.setenv("RATELIMIT_STORAGE_URL", "redis://127.0.0.1:1/0")
    (tmp_path / ".env").write_text("RATELIMIT_ENABLED=false\nRATELIMIT_DEFAULT=1/second\n")
    monkeypatch.chdir(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  rate_limit:\n    per_client: 2/minute\n")
    app = app_factory(policy_file=str(policy))
    assert app.state.rate_limiter.effective_state()["enabled"] is True
    assert app.state.rate_limiter.effective_state()["storage"] == "memory://"
    with TestClient(app, base_url="http://127.0.0.1:5000") as client:
        assert [client.get("/version").status_code for _ in range(3)] == [200, 200, 429]


def test_effective_state_is_logged_at_startup(app_factory, caplog):
    with caplog.at_level(logging.INFO, logger="mlgate.network"):
        app_factory()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "mlgate.network")
    assert "'enabled': True" in logged
    assert "'storage': 'memory://'" in logged
    assert "'per_client': '60000 per 1 minute'" in logged
    assert "'anonymous': '6000 per 1 minute'" in logged
    assert "'per_principal': '60000 per 1 minute'" in logged
    assert "'sensitive': '30 per 1 minute'" in logged


def test_unreachable_redis_refuses_to_start_naming_the_flag(app_factory):
    with pytest.raises(SettingsError) as info:
        app_factory(redis_url="redis://:hunter2@127.0.0.1:1/0")
    (problem,) = info.value.problems
    assert problem.startswith("--redis-url: cannot reach redis://:***@127.0.0.1:1/0")
    assert "hunter2" not in problem


def test_redis_url_from_cli_is_used(app_factory):
    require_redis()
    app = app_factory(redis_url=REDIS_URL)
    assert app.state.rate_limiter.effective_state()["storage"] == REDIS_URL


def test_redact_url():
    assert redact_url("redis://user:secret@host:6380/2") == "redis://user:***@host:6380/2"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_storage_outage_fails_closed_with_503():
    # Built directly, past the startup reachability check: Redis goes away while the server runs.
    limiter = RequestRateLimiter(enabled=True, storage_uri="redis://127.0.0.1:1/0", strategy="fixed-window",
                                 per_client="100/minute", per_principal="100/minute", sensitive="10/minute",
                                 sensitive_paths=(), namespace="outage")
    echo = EchoApp()
    client = TestClient(RateLimitMiddleware(echo, limiter))
    response = client.get("/x")
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert response.headers["retry-after"] == "5"
    assert echo.calls == 0


def test_principal_hook_fails_closed_when_storage_is_down():
    limiter = RequestRateLimiter(enabled=True, storage_uri="redis://127.0.0.1:1/0", strategy="fixed-window",
                                 per_client="100/minute", per_principal="100/minute", sensitive="10/minute",
                                 sensitive_paths=(), namespace="outage")
    sent = []

    async def run():
        refused = await limit_principal({"type": "http", "state": {"rate_limiter": limiter}}, "user-1")

        async def send(message):
            sent.append(message)

        await refused.respond(send)

    asyncio.run(run())
    assert sent[0]["status"] == 503
    assert b"TEMPORARILY_UNAVAILABLE" in sent[1]["body"]


# Sensitive paths: an authenticated administrator scripting user management gets a budget of its own.

def test_administrators_get_a_bulk_budget_on_user_management(app_factory, tmp_path):
    from tests.conftest import TEST_ADMIN_TOKEN

    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  rate_limit: {sensitive: 3/minute, sensitive_admin: 8/minute}\n")
    create = "/api/2.0/mlflow/users/create"
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        admin = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
        # More than the per-address budget of 3, all from the address everyone else below uses.
        made = [client.post(create, json={"username": f"bulk-{i}", "password": f"Bulk-pass-{i}-long-enough"},
                            headers=admin).status_code for i in range(6)]
        assert made == [200] * 6
        # Without credentials, or with failing ones, the tight per-address budget still applies.
        anonymous = [client.post(create, json={"username": "x", "password": "y"}).status_code for _ in range(3)]
        assert anonymous == [401, 401, 401]
        assert client.post(create, json={"username": "x", "password": "y"}).status_code == 429
        wrong = client.post(create, json={"username": "x", "password": "y"}, auth=("admin", "not-the-password"))
        assert wrong.status_code == 429
        forged = client.post(create, json={"username": "x", "password": "y"}, headers={"Authorization": "Bearer mlg_x"})
        assert forged.status_code == 429
        # The administrator goes on, on its own budget, until that is spent too.
        more = [client.post(create, json={"username": f"bulk-{i}", "password": f"Bulk-pass-{i}-long-enough"},
                            headers=admin).status_code for i in range(6, 9)]
        assert more == [200, 200, 429]


def test_a_non_administrator_keeps_the_tight_budget(app_factory, tmp_path):
    from tests.conftest import TEST_ADMIN_TOKEN

    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  rate_limit: {sensitive: 2/minute, sensitive_admin: 100/minute}\n")
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        admin = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
        assert client.post("/api/2.0/mlflow/users/create", headers=admin, json={
            "username": "plain", "password": "Quite-unrelated-secret-91"}).status_code == 200
        token = client.post("/api/2.0/mlflow/users/tokens/create", json={
            "name": "t", "expires_in_days": 1, "username": "plain"}, headers=admin).json()["token"]
        user = {"Authorization": f"Bearer {token}"}
        statuses = [client.post("/api/2.0/mlflow/users/tokens/create", json={"name": f"own-{i}", "expires_in_days": 1},
                                headers=user).status_code for i in range(3)]
        assert statuses == [200, 200, 429]
