"""Accounts over time (issue #18): deleting an account takes its grants with it, a new account of the same
name starts with nothing, and the smaller findings around accounts (who is an administrator, export/apply
after a deletion, a bearer token beside a stale session cookie)."""

from __future__ import annotations

import re

import pytest
import yaml
from starlette.testclient import TestClient

from tests.gateway.authn_support import (
    ADMIN,
    BASE_URL,
    FAST_AUTH,
    USER_PASSWORD,
    basic,
    bearer,
    create_token,
    create_user,
    make_client,
)

M = "/api/2.0/mlflow"
M3 = "/api/3.0/mlflow"
G = "/api/2.0/mlgate"
ALICE = basic("alice", USER_PASSWORD)
BOB = basic("bob", USER_PASSWORD)


@pytest.fixture
def client(app_factory, tmp_path):
    with make_client(app_factory, tmp_path) as c:
        create_user(c, "alice")
        create_user(c, "bob")
        yield c


def _experiment(client, name: str, headers: dict) -> str:
    made = client.post(f"{M}/experiments/create", json={"name": name}, headers=headers)
    assert made.status_code == 200, made.text
    return made.json()["experiment_id"]


def _delete_user(client, username: str) -> None:
    deleted = client.request("DELETE", f"{M}/users/delete", json={"username": username}, headers=ADMIN)
    assert deleted.status_code == 200, deleted.text


def _grants_of(client, subject: str) -> list[dict]:
    listed = client.get(f"{G}/grants/list", params={"subject": subject}, headers=ADMIN)
    assert listed.status_code == 200, listed.text
    return listed.json()["grants"]


def test_a_new_account_with_a_deleted_accounts_name_inherits_none_of_its_grants(client):
    # Fails on main before the fix: the owner grant and the API grant of the deleted alice stayed, and the
    # new alice could read, re-grant and delete the old alice's experiments.
    own = _experiment(client, "alice-own", ALICE)
    shared = _experiment(client, "bob-shared", BOB)
    granted = client.post(f"{M}/experiments/permissions/create",
                          json={"experiment_id": shared, "username": "alice", "permission": "EDIT"}, headers=BOB)
    assert granted.status_code == 200, granted.text
    client.post(f"{G}/groups/create", json={"name": "team"}, headers=ADMIN).raise_for_status()
    client.post(f"{G}/groups/add-member", json={"group": "team", "username": "alice"}, headers=ADMIN).raise_for_status()
    assert {g["resource"] for g in _grants_of(client, "user:alice")} == {f"experiment:{own}", f"experiment:{shared}"}

    _delete_user(client, "alice")
    assert _grants_of(client, "user:alice") == []
    create_user(client, "alice")

    assert _grants_of(client, "user:alice") == []
    for experiment_id in (own, shared):
        got = client.get(f"{M}/experiments/get", params={"experiment_id": experiment_id}, headers=ALICE)
        assert got.status_code == 404, got.text
        assert got.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    deleted = client.post(f"{M}/experiments/delete", json={"experiment_id": own}, headers=ALICE)
    assert deleted.status_code == 404, deleted.text
    regrant = client.post(f"{M}/experiments/permissions/create",
                          json={"experiment_id": own, "username": "bob", "permission": "MANAGE"}, headers=ALICE)
    assert regrant.status_code == 404, regrant.text
    searched = client.post(f"{M}/experiments/search", json={"max_results": 100}, headers=ALICE)
    assert {e["name"] for e in searched.json().get("experiments", [])} <= {"Default"}
    me = client.get(f"{M}/users/current", headers=ALICE).json()
    assert me["groups"] == []
    listed = client.get(f"{M3}/users/permissions/list", params={"username": "alice"}, headers=ALICE)
    assert listed.json()["permissions"] == []
    # The experiments themselves are untouched: bob still owns his, and the administrator sees both.
    assert client.get(f"{M}/experiments/get", params={"experiment_id": shared}, headers=BOB).status_code == 200
    assert client.get(f"{M}/experiments/get", params={"experiment_id": own}, headers=ADMIN).status_code == 200


def test_deleting_a_service_account_removes_its_grants_so_a_new_one_starts_empty(client):
    made = client.post(f"{M}/users/create", json={"username": "ci", "service_account": True}, headers=ADMIN)
    assert made.status_code == 200, made.text
    token = create_token(client, ADMIN, username="ci")
    owned = _experiment(client, "ci-owned", bearer(token))
    put = client.post(f"{G}/grants/put", json={"subject": "service:ci", "resource": "model-name:ci-*",
                                               "permission": "MANAGE"}, headers=ADMIN)
    assert put.status_code == 200, put.text
    assert len(_grants_of(client, "service:ci")) == 2

    _delete_user(client, "ci")
    assert client.get(f"{M}/users/current", headers=bearer(token)).status_code == 401
    client.post(f"{M}/users/create", json={"username": "ci", "service_account": True}, headers=ADMIN).raise_for_status()
    fresh = create_token(client, ADMIN, username="ci")
    assert _grants_of(client, "service:ci") == []
    got = client.get(f"{M}/experiments/get", params={"experiment_id": owned}, headers=bearer(fresh))
    assert got.status_code == 404, got.text


def test_deleting_a_user_is_audited_with_the_grants_it_removed(client):
    _experiment(client, "alice-audited", ALICE)
    _delete_user(client, "alice")
    records = client.get(f"{G}/audit/list", params={"action": "user.delete"}, headers=ADMIN).json()["records"]
    assert records[-1]["target"] == "alice"
    assert records[-1]["reason"] == "1 grant(s) removed"


def test_a_group_deleted_and_created_again_has_no_members_and_no_grants(client):
    shared = _experiment(client, "team-exp", ADMIN)
    client.post(f"{G}/groups/create", json={"name": "team"}, headers=ADMIN).raise_for_status()
    client.post(f"{G}/groups/add-member", json={"group": "team", "username": "alice"}, headers=ADMIN).raise_for_status()
    client.post(f"{G}/grants/put", json={"subject": "group:team", "resource": f"experiment:{shared}",
                                         "permission": "READ"}, headers=ADMIN).raise_for_status()
    assert client.get(f"{M}/experiments/get", params={"experiment_id": shared}, headers=ALICE).status_code == 200

    client.post(f"{G}/groups/delete", json={"name": "team"}, headers=ADMIN).raise_for_status()
    client.post(f"{G}/groups/create", json={"name": "team"}, headers=ADMIN).raise_for_status()
    assert client.get(f"{M}/users/current", headers=ALICE).json()["groups"] == []
    assert _grants_of(client, "group:team") == []
    assert client.get(f"{M}/experiments/get", params={"experiment_id": shared}, headers=ALICE).status_code == 404


def test_a_disabled_account_keeps_its_grants_but_cannot_use_them_until_enabled(client):
    own = _experiment(client, "alice-kept", ALICE)
    token = create_token(client, ALICE)
    flip = client.patch(f"{M}/users/update-disabled", json={"username": "alice", "disabled": True}, headers=ADMIN)
    assert flip.status_code == 200, flip.text
    assert client.get(f"{M}/experiments/get", params={"experiment_id": own}, headers=ALICE).status_code == 401
    assert client.get(f"{M}/experiments/get", params={"experiment_id": own}, headers=bearer(token)).status_code == 401
    assert len(_grants_of(client, "user:alice")) == 1
    client.patch(f"{M}/users/update-disabled", json={"username": "alice", "disabled": False},
                 headers=ADMIN).raise_for_status()
    assert client.get(f"{M}/experiments/get", params={"experiment_id": own}, headers=ALICE).status_code == 200


# --- finding 7: the smaller account items ----------------------------------------------------------------
def test_a_resource_manager_cannot_tell_administrators_from_other_accounts(client):
    # Fails on main before the fix: asked about an administrator with no grant, the answer was MANAGE, while
    # an ordinary account with no grant got NO_PERMISSIONS, so any user learned who the administrators are.
    own = _experiment(client, "alice-asks", ALICE)
    create_user(client, "root2", is_admin=True)
    params = {"resource_type": "experiment", "resource_id": own}
    about_admin = client.get(f"{M3}/users/permissions/get", params={**params, "username": "root2"}, headers=ALICE)
    about_bob = client.get(f"{M3}/users/permissions/get", params={**params, "username": "bob"}, headers=ALICE)
    assert about_admin.status_code == about_bob.status_code == 200, (about_admin.text, about_bob.text)
    assert about_admin.json() == about_bob.json() == {"allowed": False, "permission": "NO_PERMISSIONS"}
    # A grant is still answered, for an administrator as for anyone.
    client.post(f"{M}/experiments/permissions/create", json={"experiment_id": own, "username": "root2",
                                                             "permission": "READ"}, headers=ALICE).raise_for_status()
    about_admin = client.get(f"{M3}/users/permissions/get", params={**params, "username": "root2"}, headers=ALICE)
    assert about_admin.json() == {"allowed": True, "permission": "READ"}
    # Administrators asking see the effective level, which for an administrator is MANAGE.
    as_admin = client.get(f"{M3}/users/permissions/get", params={**params, "username": "root2"}, headers=ADMIN)
    assert as_admin.json() == {"allowed": True, "permission": "MANAGE"}


def test_a_file_administrator_is_not_revealed_either(app_factory, tmp_path):
    path = tmp_path / "admins.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "auth": FAST_AUTH, "access": {"admins": ["user:boss"]}}))
    with TestClient(app_factory(policy_file=str(path)), base_url=BASE_URL) as c:
        create_user(c, "alice")
        create_user(c, "boss")
        create_user(c, "bob")
        own = _experiment(c, "alice-asks", ALICE)
        params = {"resource_type": "experiment", "resource_id": own}
        answers = [c.get(f"{M3}/users/permissions/get", params={**params, "username": name}, headers=ALICE).json()
                   for name in ("boss", "bob")]
        assert answers[0] == answers[1] == {"allowed": False, "permission": "NO_PERMISSIONS"}


def test_an_export_made_after_an_account_was_deleted_applies(client):
    # Fails on main before the fix: the deleted account's grants stayed stored and were exported, and the
    # plan refused the export ("no account user:alice exists").
    shared = _experiment(client, "bob-shared", BOB)
    client.post(f"{G}/grants/put", json={"subject": "user:alice", "resource": f"experiment:{shared}",
                                         "permission": "READ"}, headers=ADMIN).raise_for_status()
    client.post(f"{G}/grants/put", json={"subject": "user:bob", "resource": "model-name:b-*",
                                         "permission": "EDIT"}, headers=ADMIN).raise_for_status()
    _delete_user(client, "alice")
    access = client.get(f"{G}/policy/export", headers=ADMIN).json()["access"]
    assert access["grants"] == [{"principal": "user:bob", "resource": "model-name:b-*", "permission": "EDIT"}]
    planned = client.post(f"{G}/policy/apply", json={"access": access, "dry_run": True}, headers=ADMIN)
    assert planned.status_code == 200, planned.text
    assert planned.json()["changes"] == []


def test_policy_apply_can_remove_owner_grants_when_asked_to(client):
    # Fails on main before the fix: owner grants were neither exported nor planned, so no file could remove one.
    kept = _experiment(client, "alice-kept", ALICE)
    dropped = _experiment(client, "alice-dropped", ALICE)
    plain = client.get(f"{G}/policy/export", headers=ADMIN).json()["access"]
    assert plain["grants"] == []  # by default, creators' grants are left out (and left alone by apply)
    access = client.get(f"{G}/policy/export", params={"owner_grants": "true"}, headers=ADMIN).json()["access"]
    assert sorted(g["resource"] for g in access["grants"]) == sorted([f"experiment:{kept}", f"experiment:{dropped}"])
    assert client.post(f"{G}/policy/apply", json={"access": plain, "dry_run": True},
                       headers=ADMIN).json()["changes"] == []
    access["grants"] = [g for g in access["grants"] if g["resource"] != f"experiment:{dropped}"]
    applied = client.post(f"{G}/policy/apply", json={"access": access, "owner_grants": True}, headers=ADMIN)
    assert applied.status_code == 200, applied.text
    assert applied.json()["changes"] == [{"op": "remove", "kind": "grant", "subject": "user:alice",
                                          "resource": f"experiment:{dropped}", "permission": "MANAGE",
                                          "source": "owner"}]
    assert client.get(f"{M}/experiments/get", params={"experiment_id": dropped}, headers=ALICE).status_code == 404
    assert client.get(f"{M}/experiments/get", params={"experiment_id": kept}, headers=ALICE).status_code == 200
    remaining = _grants_of(client, "user:alice")
    assert [(g["resource"], g["source"]) for g in remaining] == [(f"experiment:{kept}", "owner")]


def _stale_session_cookie(client) -> str:
    page = client.get("/login")
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/login", data={"username": "alice", "password": USER_PASSWORD, "csrf_token": form_token,
                                       "next": "/"})
    assert done.status_code == 303, done.text
    cookie = done.cookies.get("mlgate_session") or client.cookies.get("mlgate_session")
    csrf = client.get(f"{M}/users/current", headers={"Cookie": f"mlgate_session={cookie}"}).json()["csrf_token"]
    ended = client.post("/logout", data={"csrf_token": csrf}, headers={"Cookie": f"mlgate_session={cookie}"})
    assert ended.status_code in (200, 303), ended.text
    client.cookies.clear()
    assert client.get(f"{M}/users/current", headers={"Cookie": f"mlgate_session={cookie}"}).status_code == 401
    return cookie


def test_a_valid_bearer_token_wins_over_a_stale_session_cookie(client):
    # Fails on main before the fix: the session backend refused the ended session first (401).
    token = create_token(client, BOB)
    stale = _stale_session_cookie(client)
    with_both = {**bearer(token), "Cookie": f"mlgate_session={stale}"}
    me = client.get(f"{M}/users/current", headers=with_both)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == "bob"
    assert me.json()["auth_method"] == "token"
    # A write with the token needs no CSRF header: the cookie played no part.
    made = client.post(f"{M}/experiments/create", json={"name": "bob-with-cookie"}, headers=with_both)
    assert made.status_code == 200, made.text
    # The same for Basic, and a bad token beside a cookie is still refused.
    assert client.get(f"{M}/users/current", headers={**BOB, "Cookie": f"mlgate_session={stale}"}).status_code == 200
    bad = client.get(f"{M}/users/current", headers={**bearer("mlg_" + "x" * 43), "Cookie": f"mlgate_session={stale}"})
    assert bad.status_code == 401


def test_a_bearer_token_beside_a_live_session_cookie_is_the_caller(client):
    token = create_token(client, BOB)
    page = client.get("/login")
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/login", data={"username": "alice", "password": USER_PASSWORD, "csrf_token": form_token,
                                "next": "/"})
    cookie = client.cookies.get("mlgate_session")
    client.cookies.clear()
    me = client.get(f"{M}/users/current", headers={**bearer(token), "Cookie": f"mlgate_session={cookie}"})
    assert me.json()["user"]["username"] == "bob"
    alone = client.get(f"{M}/users/current", headers={"Cookie": f"mlgate_session={cookie}"})
    assert alone.json()["user"]["username"] == "alice"
