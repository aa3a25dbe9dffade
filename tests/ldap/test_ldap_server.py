"""LDAP sign-in end to end: a real slapd, a real ``mlgate server`` and the real mlflow client.

The directory users are not administrators; what they may touch comes only from the directory group
``cn=ml-team`` mapped to the mlgate group ``ml-team``, which the policy file grants EDIT on ``ldap-team/*``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import LiveServer, start_server
from tests.ldap.slapd import ML_TEAM, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd

CACHE_SECONDS = 2
SHARED = "ldap-team/shared"
PRIVATE = "admins-only/private"
BIND_PASSWORD_VARIABLE = "MLGATE_TEST_LDAP_BIND_PASSWORD"


def ldap_section(slapd: Slapd, **overrides) -> dict:
    section = {"url": slapd.ldaps_url, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
               "bind_password": "${" + BIND_PASSWORD_VARIABLE + "}", "user_search_base": PEOPLE,
               "group_map": {ML_TEAM: "ml-team"}, "connect_timeout_seconds": 2, "receive_timeout_seconds": 2}
    section.update(overrides)
    return section


def write_policy(path: Path, ldap: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 1,
        "auth": {"credential_cache_seconds": CACHE_SECONDS, "ldap": ldap},
        "access": {"mode": "additive",
                   "grants": [{"principal": "group:ml-team", "resource": "experiment-name:ldap-team/*",
                               "permission": "EDIT"}]},
    }, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def server(slapd, tmp_path_factory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("ldap-server")
    policy = write_policy(workdir / "policy.yaml", ldap_section(slapd))
    live = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--policy", str(policy),
                        env={BIND_PASSWORD_VARIABLE: SERVICE_PASSWORD})
    for name in (SHARED, PRIVATE):
        httpx.post(f"{live.url}/api/2.0/mlflow/experiments/create", auth=live.admin_auth, json={"name": name},
                   timeout=30).raise_for_status()
    yield live
    live.stop()


def get_experiment(server: LiveServer, auth, name: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name},
                     auth=auth, timeout=30)


def audit(server: LiveServer, actor: str) -> list[tuple[str, str, str]]:
    """(action, outcome, reason) of the records naming ``actor``, oldest first."""
    with sqlite3.connect(server.backend_store_uri.removeprefix("sqlite:///")) as db:
        return list(db.execute("SELECT action, outcome, reason FROM auth_audit_log WHERE actor = ? ORDER BY id",
                               (actor,)))


def account(server: LiveServer, name: str) -> dict | None:
    """The account as stored: id, source, admin flag and groups (None if there is none)."""
    with sqlite3.connect(server.backend_store_uri.removeprefix("sqlite:///")) as db:
        row = db.execute("SELECT id, source, is_admin FROM auth_users WHERE username = ?", (name,)).fetchone()
        if row is None:
            return None
        groups = [g for (g,) in db.execute("SELECT g.name FROM auth_groups g JOIN auth_group_members m ON "
                                           "m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name", (row[0],))]
    return {"id": row[0], "source": row[1], "is_admin": bool(row[2]), "groups": groups}


def users_listed(server: LiveServer) -> dict[str, dict]:
    """``mlgate users list -o json`` on the server's database, by username."""
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "users", "list", "--db", server.backend_store_uri,
                           "-o", "json"], capture_output=True, text=True, check=True, cwd=server.workdir)
    return {u["username"]: u for u in json.loads(done.stdout)["users"]}


def as_admin(server: LiveServer, path: str, body: dict, method: str = "POST") -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/2.0/mlflow/{path}", auth=server.admin_auth, json=body,
                         timeout=30)


def test_the_mlflow_client_works_as_a_directory_user_through_its_group(server, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(SHARED)
    assert experiment is not None
    run = client.create_run(experiment.experiment_id)
    client.log_metric(run.info.run_id, "accuracy", 0.93)
    assert client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.93}
    # Outside ldap-team/* the group grants nothing: the experiment is answered as missing.
    assert client.get_experiment_by_name(PRIVATE) is None
    private_id = get_experiment(server, server.admin_auth, PRIVATE).json()["experiment"]["experiment_id"]
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_experiment(private_id)
    user = users_listed(server)["alice"]
    assert user["source"] == "ldap"
    assert user["is_admin"] is False
    assert user["groups"] == ["ml-team"]
    assert ("login", "success", "basic: ldap") in audit(server, "alice")


def test_a_directory_user_outside_the_group_gets_nothing(server):
    response = get_experiment(server, ("bob", USERS["bob"]), SHARED)
    assert response.status_code in (403, 404)
    assert account(server, "bob")["groups"] == []


def sign_in_form(server: LiveServer, username: str, password: str) -> httpx.Response:
    """POST the sign-in form as a browser would (its cookies are Secure, so they are sent by hand over http)."""
    page = httpx.get(f"{server.url}/login", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return httpx.post(f"{server.url}/login", data={"csrf_token": csrf, "next": "/", "username": username,
                                                  "password": password},
                      headers={"Origin": server.url, "Cookie": f"mlgate_csrf={page.cookies['mlgate_csrf']}"},
                      timeout=30)


def test_the_sign_in_form_starts_a_session_for_a_directory_user(server):
    signed_in = sign_in_form(server, "jürgen", USERS["jürgen"])
    assert signed_in.status_code == 303
    session = signed_in.cookies["mlgate_session"]
    found = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": SHARED},
                      headers={"Cookie": f"mlgate_session={session}"}, timeout=30)
    assert found.status_code == 200
    assert account(server, "jürgen")["source"] == "ldap"
    assert ("login", "success", "form: ldap") in audit(server, "jürgen")


def test_the_form_refuses_a_wrong_directory_password(server):
    refused = sign_in_form(server, "alice", "wrong-one-1")
    assert refused.status_code == 401
    assert "Invalid username or password." in refused.text
    assert "mlgate_session" not in refused.cookies


def test_a_wrong_password_is_a_401_like_a_local_one_and_audited(server):
    response = get_experiment(server, ("alice", "not-alices-password"), SHARED)
    assert response.status_code == 401
    assert response.json() == {"error_code": "UNAUTHENTICATED", "message": "Invalid username or password."}
    assert ("login", "failure", "basic: ldap: wrong password (invalid credentials)") in audit(server, "alice")


def test_an_unknown_user_is_a_401_and_audited(server):
    response = get_experiment(server, ("nobody-in-the-directory", USERS["alice"]), SHARED)
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid username or password."
    assert ("login", "failure", "basic: ldap: unknown user") in audit(server, "nobody-in-the-directory")
    assert account(server, "nobody-in-the-directory") is None


@pytest.mark.parametrize("username", ["al*", "alice)(uid=*", "\\61lice", "alice\x00"])
def test_filter_injection_signs_in_nobody(server, username):
    response = get_experiment(server, (username, USERS["alice"]), SHARED)
    assert response.status_code == 401
    assert account(server, username) is None


def test_repeated_failures_lock_the_directory_name_whatever_its_case(server):
    # Five failures (the default limit) on spellings the directory treats as one name lock that name.
    for spelling in ("Dave", "dave", "DAVE", "dave ", " Dave"):
        assert get_experiment(server, (spelling, "not-daves-password"), SHARED).status_code == 401
    locked = get_experiment(server, ("dave", USERS["dave"]), SHARED)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


def test_leaving_the_directory_group_ends_access_after_the_cache_expires(server, slapd):
    auth = ("carol", USERS["carol"])
    try:
        assert get_experiment(server, auth, SHARED).status_code == 200
        slapd.remove_member(ML_TEAM, "carol")
        deadline = time.monotonic() + CACHE_SECONDS + 5
        while get_experiment(server, auth, SHARED).status_code == 200:
            assert time.monotonic() < deadline, "the group removal never took effect"
            time.sleep(0.2)
        assert get_experiment(server, auth, SHARED).status_code in (403, 404)
        assert account(server, "carol")["groups"] == []
    finally:
        slapd.add_member(ML_TEAM, "carol")


def test_a_local_account_of_the_same_name_wins_and_a_disabled_one_stays_refused(server, slapd):
    # A local account "eve" first, then a directory entry of the same name in the mapped group.
    local_password = "a-local-password-9"
    assert as_admin(server, "users/create", {"username": "eve", "password": local_password}).status_code == 200
    slapd_user = ("eve", "eve-directory-password-1")
    with slapd.admin() as conn:
        conn.add(f"uid=eve,{PEOPLE}", ["inetOrgPerson"],
                 {"uid": "eve", "cn": "eve", "sn": "eve", "userPassword": slapd_user[1]})
        conn.modify(ML_TEAM, {"member": [("MODIFY_ADD", [f"uid=eve,{PEOPLE}"])]})
    try:
        # The directory's password never opens the local account, and its groups never apply to it.
        assert get_experiment(server, slapd_user, SHARED).status_code == 401
        assert get_experiment(server, ("eve", local_password), SHARED).status_code in (403, 404)
        assert account(server, "eve")["source"] == "local"
        # Disabled locally: neither password works.
        assert as_admin(server, "users/update-disabled", {"username": "eve", "disabled": True},
                        method="PATCH").status_code == 200
        assert get_experiment(server, slapd_user, SHARED).status_code == 401
        assert get_experiment(server, ("eve", local_password), SHARED).status_code == 401
        old_id = account(server, "eve")["id"]
        # Deleted: the name is the directory's now, as a new account that inherits nothing of the old one.
        assert as_admin(server, "users/delete", {"username": "eve"}, method="DELETE").status_code == 200
        assert get_experiment(server, slapd_user, SHARED).status_code == 200
        new = account(server, "eve")
        assert new["source"] == "ldap"
        assert new["id"] != old_id
        assert get_experiment(server, ("eve", local_password), SHARED).status_code == 401
    finally:
        with slapd.admin() as conn:
            conn.modify(ML_TEAM, {"member": [("MODIFY_DELETE", [f"uid=eve,{PEOPLE}"])]})
            conn.delete(f"uid=eve,{PEOPLE}")


def test_a_disabled_directory_account_is_refused_and_never_gets_a_local_password(server):
    auth = ("jürgen", USERS["jürgen"])
    assert get_experiment(server, auth, SHARED).status_code == 200
    refused = as_admin(server, "users/update-password", {"username": "jürgen", "password": "a-local-password-9"},
                       method="PATCH")
    assert refused.status_code == 400
    assert "directory" in refused.json()["message"]
    assert as_admin(server, "users/update-disabled", {"username": "jürgen", "disabled": True},
                    method="PATCH").status_code == 200
    try:
        assert get_experiment(server, auth, SHARED).status_code == 401
        assert ("login", "failure", "basic: ldap: disabled user") in audit(server, "jürgen")
    finally:
        as_admin(server, "users/update-disabled", {"username": "jürgen", "disabled": False}, method="PATCH")
