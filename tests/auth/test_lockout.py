"""Lockout per username and per address, with exponential backoff, on memory and Redis storage."""

import time
import uuid

import pytest

from auth.errors import LockedOut
from auth.lockout import Lockout
from policies.file.auth import LockoutConfig
from tests.services import REDIS_URL, require_redis


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
