"""Lockout per username and per address, with exponential backoff, on memory and Redis storage."""

import threading
import time
import uuid

import pytest

from auth.errors import LockedOut
from auth.lockout import Lockout, LockoutUnavailable
from policies.file.auth import LockoutConfig
from tests.services import REDIS_URL, SilentServer, require_redis


@pytest.fixture(params=["memory", "redis"])
def storage_url(request) -> str:
    if request.param == "redis":
        require_redis()
        return REDIS_URL
    return "memory://"


def _names() -> tuple[str, str]:
    # Redis is shared between test runs: unique keys keep runs independent.
    tag = uuid.uuid4().hex[:8]
    return f"user-{tag}", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.{int(tag[4:6], 16)}"


def test_user_is_locked_after_the_limit_with_retry_after(storage_url):
    lockout = Lockout(LockoutConfig(user_max_failures=3, base_seconds=30), storage_url)
    user, addr = _names()
    for _ in range(2):
        lockout.check(user, addr)
        assert lockout.failed(user, addr) is None
    lockout.check(user, addr)
    assert lockout.failed(user, addr) == 30
    with pytest.raises(LockedOut) as info:
        lockout.check(user, "192.0.2.1")  # another address does not help
    assert 28 <= info.value.retry_after <= 30
    lockout.check("someone-else-" + user, "192.0.2.1")  # other users are unaffected


def test_address_is_locked_across_usernames(storage_url):
    lockout = Lockout(LockoutConfig(user_max_failures=100, address_max_failures=4, base_seconds=20), storage_url)
    _, addr = _names()
    for i in range(4):
        lockout.failed(f"spray-{i}-{uuid.uuid4().hex[:6]}", addr)
    with pytest.raises(LockedOut):
        lockout.check(f"fresh-{uuid.uuid4().hex[:6]}", addr)


def test_backoff_doubles_and_recovers(storage_url):
    lockout = Lockout(LockoutConfig(user_max_failures=2, base_seconds=1, max_seconds=8), storage_url)
    user, addr = _names()
    lockout.failed(user, addr)
    assert lockout.failed(user, addr) == 1
    with pytest.raises(LockedOut):
        lockout.check(user, addr)
    time.sleep(1.2)
    lockout.check(user, addr)  # the lock ended
    assert lockout.failed(user, addr) == 2  # the next failure locks twice as long
    with pytest.raises(LockedOut) as info:
        lockout.check(user, None)
    assert info.value.retry_after == 2


def test_success_clears_the_user_count(storage_url):
    lockout = Lockout(LockoutConfig(user_max_failures=3, address_max_failures=1000, base_seconds=30), storage_url)
    user, addr = _names()
    lockout.failed(user, addr)
    lockout.failed(user, addr)
    lockout.succeeded(user)
    lockout.failed(user, addr)
    lockout.failed(user, addr)
    lockout.check(user, addr)  # 2 failures since the success: still below the limit of 3


def test_processes_share_counters_on_redis_within_one_namespace_and_deployments_do_not():
    # Each Lockout stands for one server process (its own Redis connection, nothing in memory shared).
    require_redis()
    config = LockoutConfig(user_max_failures=3, base_seconds=30)
    ours, theirs = f"deploy-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    on_a, on_b = Lockout(config, REDIS_URL, namespace=ours), Lockout(config, REDIS_URL, namespace=ours)
    other_deployment = Lockout(config, REDIS_URL, namespace=theirs)
    user, addr = _names()
    try:
        assert on_a.failed(user, addr) is None
        assert on_b.failed(user, addr) is None  # B adds to A's count
        assert on_a.failed(user, addr) == 30  # the third failure, across processes, locks
        with pytest.raises(LockedOut):
            on_b.check(user, None)
        other_deployment.check(user, addr)  # same user name and address, another deployment: not locked
        assert other_deployment.failed(user, addr) is None
    finally:
        _clear_redis(ours, theirs)


def _clear_redis(*namespaces: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for namespace in namespaces:
            keys = list(client.scan_iter(match=f"*{namespace}*"))
            assert keys, f"no lockout key carries the namespace {namespace}"
            client.delete(*keys)
    finally:
        client.close()


def _bounded(call, seconds: float):
    """Run ``call`` in a daemon thread; fail if it is still running after ``seconds`` (never hang the test)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:  # handed back to the test
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting on the lockout storage after {seconds}s"
    return outcome[0]


@pytest.mark.parametrize("redis_state", ["stalled", "down"])
def test_an_unanswering_redis_refuses_the_attempt_quickly_instead_of_hanging_or_allowing_it(redis_state, caplog):
    stalled = SilentServer()
    url = stalled.redis_url
    if redis_state == "down":
        stalled.close()  # nothing listens on the port any more
    try:
        lockout = Lockout(LockoutConfig(), f"redis://:hunter2-{uuid.uuid4().hex}@{url.removeprefix('redis://')}")
        user, addr = _names()
        for call in (lambda: lockout.check(user, addr), lambda: lockout.failed(user, addr),
                     lambda: lockout.succeeded(user)):
            kind, value = _bounded(call, 15)
            assert kind == "raised", value
            assert isinstance(value, LockoutUnavailable)
            assert value.code == "TEMPORARILY_UNAVAILABLE"
    finally:
        if redis_state == "stalled":
            stalled.close()
    assert "hunter2" not in caplog.text  # the Redis password never reaches a log
    assert "lockout storage unavailable" in caplog.text


def test_a_sign_in_over_http_gets_503_when_the_lockout_storage_stalls(app_factory, tmp_path):
    # End to end through the app: Basic credentials, Redis for lockout only (rate limits off, so the
    # limiter's own startup check and 503 do not hide the lockout's), and that Redis never answers.
    from starlette.testclient import TestClient

    from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_USERNAME

    policy = tmp_path / "policy.yaml"
    policy.write_text("network:\n  rate_limit:\n    enabled: false\n")
    stalled = SilentServer()
    try:
        app = app_factory(redis_url=stalled.redis_url, policy_file=str(policy))
        with TestClient(app, base_url="http://127.0.0.1:5000") as client:
            kind, response = _bounded(lambda: client.get("/api/2.0/mlflow/users/current",
                                                         auth=(TEST_ADMIN_USERNAME, TEST_ADMIN_PASSWORD)), 20)
            # The sign-in form says the same, never "invalid password" for a password it could not check.
            page = client.get("/login")
            csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form_kind, form = _bounded(lambda: client.post("/login", data={
                "username": TEST_ADMIN_USERNAME, "password": TEST_ADMIN_PASSWORD, "csrf_token": csrf,
                "next": "/"}, follow_redirects=False), 20)
    finally:
        stalled.close()
    assert kind == "ok", response
    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert str(stalled.port) not in response.text
    assert form_kind == "ok", form
    assert form.status_code == 503, form.text
    assert "Signing in is unavailable for a moment" in form.text
    assert "Invalid username or password" not in form.text
    assert "mlgate_session" not in form.cookies
