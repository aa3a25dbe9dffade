"""With Redis, a change on one process drops cached credentials on the others by pub/sub."""

import time

import pytest

from auth.accounts import Accounts
from auth.errors import Unauthenticated
from auth.principal import Principal
from tests.services import REDIS_URL, require_redis

PASSWORD = "violet-harbor-engine-3"
ADMIN = Principal(id=0, kind="user", name="root-test", is_admin=True, groups=frozenset(), auth_method="basic")


def test_pubsub_drops_the_entry_and_skips_the_database_check(identity_factory):
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    assert process_a.invalidation.push_enabled
    assert process_b.invalidation.push_enabled
    Accounts(process_a).create_user(ADMIN, "ivy", PASSWORD, client=None)
    process_b.password_login("ivy", PASSWORD, None)
    key = process_b.cache.key_for("password", "basic", "ivy", PASSWORD)
    assert process_b.cache.get(key) is not None
    Accounts(process_a).change_password(ADMIN, "ivy", "another-secret-value-4", None, client=None)
    deadline = time.monotonic() + 2
    while process_b.cache.get(key) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_b.cache.get(key) is None, "the pub/sub invalidation did not arrive within 2 s"
    with pytest.raises(Unauthenticated):
        process_b.password_login("ivy", PASSWORD, None)
