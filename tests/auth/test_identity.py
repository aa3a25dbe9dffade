"""Password and token login through the Identity service: caching, invalidation, audit, rehash."""

import threading
import time

import pytest

from auth.accounts import Accounts
from auth.errors import LockedOut, Unauthenticated
from auth.identity import GENERATION_CHECK_SECONDS
from auth.principal import Principal
from auth.store import now_ms
from auth.tokens import new_token, new_token_id, token_hash

PASSWORD = "river-stone-lantern-5"


def _admin() -> Principal:
    return Principal(id=0, kind="user", name="root-test", is_admin=True, groups=frozenset(), auth_method="basic")


def test_password_is_verified_once_per_ttl(identity, accounts):
    accounts.create_user(_admin(), "alice", PASSWORD, client=None)
    before = identity.hasher.verifications
    first = identity.password_login("alice", PASSWORD, "10.0.0.1")
    for _ in range(20):
        assert identity.password_login("alice", PASSWORD, "10.0.0.1") == first
    assert identity.hasher.verifications == before + 1
    assert first.name == "alice"
    assert first.auth_method == "basic"
    assert not first.is_admin


def test_concurrent_logins_with_one_credential_verify_the_hash_once(identity, accounts):
    accounts.create_user(_admin(), "alice", PASSWORD, client=None)
    before = identity.hasher.verifications
    start = threading.Barrier(8)
    results = []

    def login() -> None:
        start.wait()
        results.append(identity.password_login("alice", PASSWORD, "10.0.0.1"))

    threads = [threading.Thread(target=login) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.name for p in results] == ["alice"] * 8
    assert identity.hasher.verifications == before + 1


def test_concurrent_wrong_passwords_are_each_refused(identity, accounts):
    accounts.create_user(_admin(), "erin", PASSWORD, client=None)
    outcomes = []

    def login() -> None:
        try:
            identity.password_login("erin", "not-the-password-42", "10.0.0.2")
            outcomes.append("accepted")
        except (Unauthenticated, LockedOut):
            outcomes.append("refused")

    threads = [threading.Thread(target=login) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["refused"] * 3


def test_change_on_another_process_ends_the_cached_login_at_once(identity_factory):
    process_a, process_b = identity_factory(), identity_factory()
    Accounts(process_a).create_user(_admin(), "bob", PASSWORD, client=None)
    process_b.password_login("bob", PASSWORD, None)  # cached in B
    Accounts(process_a).change_password(_admin(), "bob", "a-brand-new-secret-9", None, client=None)
    with pytest.raises(Unauthenticated):
        process_b.password_login("bob", PASSWORD, None)
    assert process_b.password_login("bob", "a-brand-new-secret-9", None).name == "bob"


@pytest.mark.parametrize("change", ["disable", "delete"])
def test_disable_or_delete_ends_the_cached_login(identity_factory, change):
    process_a, process_b = identity_factory(), identity_factory()
    accounts = Accounts(process_a)
    accounts.create_user(_admin(), "carol", PASSWORD, client=None)
    process_b.password_login("carol", PASSWORD, None)
    if change == "disable":
        accounts.set_disabled(_admin(), "carol", True, client=None)
    else:
        accounts.delete_user(_admin(), "carol", client=None)
    with pytest.raises(Unauthenticated):
        process_b.password_login("carol", PASSWORD, None)


def test_login_upgrades_an_outdated_hash(identity):
    from auth.passwords import PasswordHasher

    weak = PasswordHasher(rounds=10).hash(PASSWORD)
    user = identity.store.create_user("dave", weak)
    stronger = PasswordHasher(rounds=11)
    identity.hasher = stronger
    identity.password_login("dave", PASSWORD, None)
    assert "r=11" in identity.store.user_by_id(user.id).password_hash


def test_failures_lock_the_user_and_are_audited(identity_factory):
    identity = identity_factory({"lockout": {"user_max_failures": 2, "base_seconds": 60}})
    Accounts(identity).create_user(_admin(), "erin", PASSWORD, client=None)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            identity.password_login("erin", "wrong-password-123", "10.9.9.9")
    with pytest.raises(LockedOut):
        identity.password_login("erin", PASSWORD, "10.9.9.9")
    actions = [(r["action"], r["outcome"]) for r in identity.store.audit_records()]
    assert actions[:3] == [("lockout", "denied"), ("login", "failure"), ("login", "failure")]
    assert all(PASSWORD not in str(r) and "wrong-password-123" not in str(r) for r in identity.store.audit_records())


def _token_for(identity, username: str, *, expires_at: int | None = None, read_only=False) -> tuple[str, str]:
    user = identity.store.user_by_name(username)
    token, token_id = new_token(), new_token_id()
    identity.store.create_token(token_id, user.id, "t", token_hash(token), read_only=read_only,
                                expires_at=expires_at or now_ms() + 3_600_000, created_by=user.id)
    return token, token_id


def test_token_login_and_revocation_across_processes_within_two_seconds(identity_factory):
    process_a, process_b = identity_factory(), identity_factory()
    Accounts(process_a).create_user(_admin(), "frank", PASSWORD, client=None)
    token, token_id = _token_for(process_a, "frank", read_only=True)
    principal = process_b.token_login(token, None)
    assert principal.token_id == token_id
    assert principal.read_only
    assert principal.auth_method == "token"
    process_a.store.revoke_token(token_id)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            process_b.token_login(token, None)
        except Unauthenticated:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a revoked token still worked on another process after 2 s")


def test_expired_token_is_refused(identity):
    identity.store.create_user("gina", None, kind="service")
    token, _ = _token_for(identity, "gina", expires_at=now_ms() - 1)
    with pytest.raises(Unauthenticated):
        identity.token_login(token, None)


def test_service_accounts_cannot_log_in_with_a_password(identity):
    identity.store.create_user("svc", None, kind="service")
    with pytest.raises(Unauthenticated):
        identity.password_login("svc", PASSWORD, None)


def test_groups_are_part_of_the_principal(identity, accounts):
    user = accounts.create_user(_admin(), "hank", PASSWORD, client=None)
    identity.store.add_to_group(user.id, "team-a")
    assert identity.password_login("hank", PASSWORD, None).groups == frozenset({"team-a"})


def test_a_user_imported_from_mlflow_logs_in_and_gets_a_bcrypt_hash(identity):
    from werkzeug.security import generate_password_hash

    user = identity.store.create_user("imported", generate_password_hash(PASSWORD))  # MLflow's scrypt format
    assert identity.password_login("imported", PASSWORD, None).name == "imported"
    assert identity.store.user_by_id(user.id).password_hash.startswith("$bcrypt-sha256$")
    identity.cache.clear()
    assert identity.password_login("imported", PASSWORD, None).name == "imported"


def test_cached_only_login_answers_from_the_cache_and_honours_changes_elsewhere(identity_factory):
    from auth.identity import CacheMiss

    now = [time.time()]
    process_a, process_b = identity_factory(), identity_factory(clock=lambda: now[0])
    Accounts(process_a).create_user(_admin(), "fay", PASSWORD, client=None)
    with pytest.raises(CacheMiss):
        process_b.password_login("fay", PASSWORD, None, cached_only=True)
    verified = process_b.password_login("fay", PASSWORD, None)
    before = process_b.hasher.verifications
    assert process_b.password_login("fay", PASSWORD, None, cached_only=True) == verified
    assert process_b.hasher.verifications == before
    with pytest.raises(CacheMiss):
        process_b.password_login("fay", "some-other-secret-77", None, cached_only=True)
    Accounts(process_a).set_disabled(_admin(), "fay", True, client=None)
    # Without Redis, process B re-reads the user's generation at most once per GENERATION_CHECK_SECONDS.
    now[0] += GENERATION_CHECK_SECONDS
    with pytest.raises(CacheMiss):  # the generation moved: the full path (which refuses) must run
        process_b.password_login("fay", PASSWORD, None, cached_only=True)
    with pytest.raises(Unauthenticated):
        process_b.password_login("fay", PASSWORD, None)
