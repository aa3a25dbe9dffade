"""The default budgets: a hyperparameter sweep on one host fits them, a flood without credentials does not.

The sweep's numbers (docs/network.md, "Rate-limit defaults"): MLflow 3.17's client with asynchronous logging
(``synchronous=False``) sends one ``runs/log-batch`` per logging call (its AsyncLoggingQueue merges queued
calls only when MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS is set, which is off by default). A job logging its
metrics once per step at 10 steps a second, plus a handful of calls to create, tag and end its run, makes
at most 610 requests a minute; 64 such jobs on one host, as one user, from one address: 39,040.

Nothing here waits on the clock: the limiter's clock is pinned, so one window holds the whole minute.
"""

from __future__ import annotations

import asyncio
import types
import uuid

import pytest
from starlette.testclient import TestClient

from gateway.middleware.ratelimit import RequestRateLimiter
from policies.file.network import DEFAULT_SENSITIVE_PATHS, RateLimitConfig
from tests.conftest import TEST_ADMIN_TOKEN

JOBS = 64
STEPS_PER_SECOND = 10  # one log_metrics(..., synchronous=False) call per step
RUN_LIFECYCLE_CALLS = 10  # create run, log params and tags, end run (and a few reads), per job and minute
SWEEP_REQUESTS_PER_MINUTE = JOBS * (STEPS_PER_SECOND * 60 + RUN_LIFECYCLE_CALLS)  # 39,040


@pytest.fixture
def pinned_clock(monkeypatch):
    """The in-memory limiter's clock stands still: every count falls in one window."""
    import limits.aio.storage.memory as memory

    monkeypatch.setattr(memory, "time", types.SimpleNamespace(time=lambda: 1_800_000_000.0))


def default_limiter() -> RequestRateLimiter:
    config = RateLimitConfig()
    return RequestRateLimiter(enabled=True, storage_uri="memory://", strategy=config.strategy,
                              per_client=config.per_client, anonymous=config.anonymous,
                              per_principal=config.per_principal, sensitive=config.sensitive,
                              sensitive_admin=config.sensitive_admin, sensitive_paths=DEFAULT_SENSITIVE_PATHS,
                              namespace=f"t-{uuid.uuid4().hex[:12]}")


def test_a_64_job_sweep_on_one_host_fits_the_default_budgets(pinned_clock):
    """Every request of a minute of the sweep passes both budgets it spends: its address's and its user's."""
    limiter = default_limiter()

    async def sweep() -> list[object]:
        refused = []
        for _ in range(SWEEP_REQUESTS_PER_MINUTE):
            verdict = await limiter.check_client("192.0.2.10", "/api/2.0/mlflow/runs/log-batch", "POST") \
                or await limiter.check_principal("user:7")
            if verdict is not None:
                refused.append(verdict)
        return refused

    assert asyncio.run(sweep()) == []


def test_a_flood_without_credentials_from_one_address_is_cut_at_its_budget(pinned_clock):
    limiter = default_limiter()
    budget = RateLimitConfig().anonymous
    assert budget == "6000/minute"

    async def flood() -> tuple[int, object]:
        for n in range(1, 100_000):
            verdict = await limiter.check_client("203.0.113.9", "/api/2.0/mlflow/experiments/search") \
                or await limiter.check_anonymous("203.0.113.9")
            if verdict is not None:
                return n, verdict
        return 0, None

    n, verdict = asyncio.run(flood())
    assert n == 6001
    assert verdict.scope_name == "client address without credentials"


def test_the_sweep_needs_more_than_the_old_defaults_gave():
    """Why the defaults moved: the old 6,000 a minute per address and per user refused 85 % of the sweep."""
    assert SWEEP_REQUESTS_PER_MINUTE > 6000
    assert SWEEP_REQUESTS_PER_MINUTE <= 60_000  # the new per_client and per_principal


def test_without_credentials_an_address_is_cut_while_its_users_go_on(app_factory, tmp_path):
    """Through the app, with budgets scaled down: requests without an identity (none sent, a wrong password,
    a forged token) share the address's anonymous budget; an authenticated user from the same address keeps
    its own budgets."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  rate_limit: {per_client: 100/minute, anonymous: 4/minute, "
                      "per_principal: 100/minute}\n")
    path = "/api/2.0/mlflow/experiments/get"
    params = {"experiment_id": "0"}
    admin = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        anonymous = [client.get(path, params=params).status_code for _ in range(2)]
        wrong = client.get(path, params=params, auth=("admin", "not-the-password")).status_code
        forged = client.get(path, params=params, headers={"Authorization": "Bearer mlg_forged"}).status_code
        assert (anonymous, wrong, forged) == ([401, 401], 401, 401)
        cut = client.get(path, params=params)
        assert cut.status_code == 429
        assert cut.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert int(cut.headers["Retry-After"]) >= 1
        # A wrong password past the budget is checked (and counted against the account's lockout), then refused.
        assert client.get(path, params=params, auth=("admin", "still-not-it")).status_code == 429
        assert [client.get(path, params=params, headers=admin).status_code for _ in range(10)] == [200] * 10


def test_wrong_scim_tokens_spend_the_anonymous_budget_while_the_identity_provider_goes_on(app_factory, tmp_path,
                                                                                          monkeypatch):
    """SCIM bypasses the authentication layer (its token is checked by the authorizer), so a guess at the
    provisioning token is a request without an identity too: before, it spent only per_client (now 60,000
    a minute, ten times the old default), each one an audited denial."""
    import secrets

    token = secrets.token_urlsafe(32)
    monkeypatch.setenv("MLGATE_TEST_SCIM_TOKEN", token)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nauth:\n  scim: {token: '${MLGATE_TEST_SCIM_TOKEN}'}\n"
                      "network:\n  rate_limit: {per_client: 100/minute, anonymous: 3/minute, per_principal: "
                      "100/minute}\n")
    path = "/scim/v2/Users"
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        guesses = [client.get(path, headers={"Authorization": f"Bearer guess-{i}"}).status_code for i in range(3)]
        assert guesses == [401, 401, 401]
        cut = client.get(path, headers={"Authorization": "Bearer guess-4"})
        assert cut.status_code == 429, cut.text
        assert client.get(path).status_code == 429  # no token at all: the same budget
        # The identity provider holding the real token is not throttled by the anonymous budget.
        good = {"Authorization": f"Bearer {token}"}
        assert [client.get(path, headers=good).status_code for _ in range(6)] == [200] * 6
