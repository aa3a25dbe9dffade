"""With Redis, a change on one process drops cached credentials on the others by pub/sub."""

import threading
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


@pytest.mark.parametrize("changed_on", ["another process", "the same process"])
def test_an_invalidation_arriving_during_the_password_check_keeps_the_old_password_out_of_the_cache(
        identity_factory, changed_on):
    # Process B reads ivy's row, then spends a few hundred milliseconds on the hash. If the password
    # changes in that window, the invalidation reaches B before B caches the login: B must not cache the
    # credential it checked against the old row, or (with Redis healthy, so no database check on hits)
    # the old password would keep working on B for the whole cache lifetime.
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    assert process_b.invalidation.push_enabled
    changer = process_a if changed_on == "another process" else process_b
    Accounts(process_a).create_user(ADMIN, "ivy", PASSWORD, client=None)
    user_id = process_a.store.user_by_name("ivy").id

    dropped = threading.Event()
    drop_user = process_b.cache.drop_user

    def observed_drop(uid: int) -> None:
        drop_user(uid)
        if uid == user_id:
            dropped.set()

    process_b.cache.drop_user = observed_drop
    verify = process_b.hasher.verify
    hooked = []

    def verify_while_the_password_changes(password, stored):
        if not hooked:  # once: B has read the old row and is checking the old password against it
            hooked.append(True)
            Accounts(changer).change_password(ADMIN, "ivy", "another-secret-value-4", None, client=None)
            assert dropped.wait(5), "the invalidation never reached process B"
        return verify(password, stored)

    process_b.hasher.verify = verify_while_the_password_changes
    process_b.password_login("ivy", PASSWORD, None)  # began before the change: it may succeed, once
    assert hooked
    key = process_b.cache.key_for("password", "basic", "ivy", PASSWORD)
    assert process_b.cache.get(key) is None, "the login checked against the old row was cached"
    with pytest.raises(Unauthenticated):
        process_b.password_login("ivy", PASSWORD, None)
    assert process_b.password_login("ivy", "another-secret-value-4", None).name == "ivy"


def test_a_grant_change_published_by_one_process_reaches_the_others_listeners(identity_factory):
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    heard = threading.Event()
    process_b.invalidation.on_grants_changed(heard.set)
    key = process_b.cache.key_for("password", "basic", "nobody", "x")
    process_b.cache.put(key, ADMIN, 1)
    process_a.invalidation.publish_grants()
    assert heard.wait(2), "the grant invalidation did not arrive within 2 s"
    assert process_b.cache.get(key) is not None  # a grant change drops no credential
