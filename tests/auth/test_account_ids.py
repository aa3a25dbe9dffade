"""Account ids are never reused (issue #18, finding 4), on SQLite and PostgreSQL, and a cached credential is
never honoured for another account that holds its id (a database that reused ids before revision 0005)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from auth.accounts import Accounts
from auth.errors import Unauthenticated
from auth.oidc_accounts import OidcAccounts
from auth.principal import Principal
from auth.store import IdentityStore, now_ms
from auth.tables import users
from gateway.db import current_revision, head_revision, upgrade_database
from tests.services import fresh_postgres_database
from tracking.db.engine import make_engine

PASSWORD = "river-stone-lantern-5"
BEFORE = "0004_resource_lifecycle"


def _admin() -> Principal:
    return Principal(id=0, kind="user", name="root-test", is_admin=True, groups=frozenset(), auth_method="basic")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_uri(request, tmp_path: Path):
    """An empty database on each backend."""
    if request.param == "postgresql":
        with fresh_postgres_database(migrated=False) as uri:
            yield uri
    else:
        yield f"sqlite:///{tmp_path / 'ids.db'}"


@pytest.fixture
def migrated_engine(database_uri):
    engine = make_engine(database_uri)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def test_the_id_of_a_deleted_newest_account_is_never_handed_out_again(migrated_engine):
    # Fails on main on SQLite: without AUTOINCREMENT the next account got max(id) + 1, the deleted one's id.
    store = IdentityStore(migrated_engine)
    store.create_user("first", None, kind="service")
    newest = store.create_user("newest", None, kind="service")
    store.delete_user(newest.id)
    again = store.create_user("newest", None, kind="service")
    other = store.create_user("other", None, kind="service")
    assert again.id > newest.id
    assert other.id > again.id
    store.delete_user(other.id)
    # The other ways accounts are made (single sign-on, machine tokens) draw from the same sequence.
    machine = OidcAccounts(migrated_engine).service_account("machine")
    assert machine.id > other.id


def test_a_database_from_before_0005_keeps_its_accounts_and_their_rows(database_uri):
    engine = make_engine(database_uri)
    try:
        upgrade_database(engine, BEFORE)
        with engine.begin() as conn:
            for i, name in enumerate(("ann", "ben", "cid"), 1):
                # Raw SQL: the columns of that revision (today's table has later ones, such as source).
                conn.execute(text("INSERT INTO auth_users (id, username, kind, is_admin, disabled, generation, "
                                  "created_at, updated_at) VALUES (:i, :name, 'user', :admin, false, :i, :i, :i)"),
                             {"i": i, "name": name, "admin": i == 1})
            conn.execute(text("INSERT INTO auth_access_tokens (id, user_id, name, token_hash, read_only, created_at, "
                              "expires_at) VALUES ('t1', 1, 't', 'h1', false, 1, 2)"))
            conn.execute(text("INSERT INTO auth_sessions (id, user_id, generation, created_at, last_seen_at) "
                              "VALUES ('s1', 2, 2, 1, 1)"))
            conn.execute(text("INSERT INTO auth_groups (id, name, created_at) VALUES (1, 'team', 1)"))
            conn.execute(text("INSERT INTO auth_group_members (group_id, user_id) VALUES (1, 3)"))
            conn.execute(text("INSERT INTO auth_oidc_identities (provider, subject, user_id, created_at) "
                              "VALUES ('idp', 'sub-1', 3, 1)"))
            conn.execute(text(
                "INSERT INTO auth_grants (subject, resource_kind, resource_id, permission, source, created_at) VALUES "
                "('user:ann', 'experiment', '1', 'MANAGE', 'owner', 1), "
                "('group:team', 'experiment', '1', 'READ', 'api', 1), "
                # left behind by accounts deleted before this release: a new account of the name inherited them
                "('user:gone', 'experiment', '1', 'MANAGE', 'owner', 1), "
                "('service:ann', 'experiment', '1', 'READ', 'api', 1)"))
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            kept = [tuple(r) for r in conn.execute(select(users.c.id, users.c.username, users.c.is_admin,
                                                          users.c.generation).order_by(users.c.id))]
            assert kept == [(1, "ann", True, 1), (2, "ben", False, 2), (3, "cid", False, 3)]
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in (
                "auth_access_tokens", "auth_sessions", "auth_group_members", "auth_oidc_identities")}
            assert counts == dict.fromkeys(counts, 1)
            subjects = sorted(conn.execute(text("SELECT subject FROM auth_grants")).scalars())
            assert subjects == ["group:team", "user:ann"]
            # The foreign keys still hold, and still cascade.
            conn.execute(text("DELETE FROM auth_users WHERE id = 1"))
            assert conn.execute(text("SELECT count(*) FROM auth_access_tokens")).scalar() == 0
        store = IdentityStore(engine)
        newest = store.create_user("dee", None, kind="service")
        assert newest.id == 4
        store.delete_user(newest.id)
        assert store.create_user("eve", None, kind="service").id == 5
    finally:
        engine.dispose()


def test_a_cached_password_is_refused_once_another_account_holds_its_id(identity_factory, engine):
    # A database that reused ids (SQLite before 0005): the deleted account's id, name and generation come
    # back on a new account. Fails on main: the cache compared the generation only, so the old password
    # went on working on the process that had cached it.
    process_a, process_b = identity_factory(), identity_factory()
    Accounts(process_a).create_user(_admin(), "gus", PASSWORD, client=None)
    cached = process_b.password_login("gus", PASSWORD, None)
    Accounts(process_a).delete_user(_admin(), "gus", client=None)
    with engine.begin() as conn:
        conn.execute(insert(users).values(id=cached.id, username="gus", kind="user",
                                          password_hash=process_a.hasher.hash("another-secret-value-4"),
                                          is_admin=False, disabled=False, generation=1, created_at=now_ms() + 1,
                                          updated_at=now_ms()))
    with pytest.raises(Unauthenticated):
        process_b.password_login("gus", PASSWORD, None)
    assert process_b.password_login("gus", "another-secret-value-4", None).id == cached.id


def test_a_cached_password_is_refused_once_an_account_of_another_name_holds_its_id(identity_factory, engine):
    process_a, process_b = identity_factory(), identity_factory()
    Accounts(process_a).create_user(_admin(), "hal", PASSWORD, client=None, is_admin=True)
    cached = process_b.password_login("hal", PASSWORD, None)
    assert cached.is_admin
    Accounts(process_a).delete_user(_admin(), "hal", client=None)
    with engine.begin() as conn:
        conn.execute(insert(users).values(id=cached.id, username="ivy", kind="user", password_hash=None,
                                          is_admin=False, disabled=False, generation=1, created_at=cached.id,
                                          updated_at=1))
    with pytest.raises(Unauthenticated):
        process_b.password_login("hal", PASSWORD, None)
