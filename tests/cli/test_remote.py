"""The admin CLI in remote mode: the installed ``mlgate`` against one real server, as an operator uses it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import httpx

from gateway.commands.output import EXIT_NOT_FOUND
from tests.cli.conftest import Mlgate

USER_FIELDS = {"id", "username", "kind", "is_admin", "disabled", "groups", "created_at", "source"}
GRANT_FIELDS = {"id", "subject", "resource", "resource_name", "permission", "source", "created_by", "created_at",
                "expires_at", "break_glass"}
AUDIT_FIELDS = {"id", "at", "actor", "action", "target", "client_address", "outcome", "reason", "workspace"}


def _create_experiment(server, name: str) -> str:
    response = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                          auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def test_login_keeps_a_private_token_that_later_commands_use(admin: Mlgate, server):
    config = admin.env["MLGATE_CONFIG"]
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    stored = json.loads(open(config).read())["profiles"]["default"]
    assert stored["server"] == server.url
    assert stored["username"] == "admin"
    assert stored["token"]
    # No --server and no MLGATE_* variables: the stored login is used.
    found = admin.json("users", "list")["users"]
    assert [u["username"] for u in found] == ["admin"]
    assert set(found[0]) == USER_FIELDS
    assert found[0]["is_admin"] is True
    assert found[0]["kind"] == "user"
    table = admin("users", "list")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["USERNAME", "KIND", "ADMIN"]


def test_user_lifecycle(admin: Mlgate, server):
    created = admin.json("users", "create", "bob", "--password-stdin", input="first-Passw0rd-long\n")["user"]
    assert set(created) == USER_FIELDS
    assert created["username"] == "bob"
    assert created["is_admin"] is False

    assert admin.json("users", "set-admin", "bob", "true") == {"username": "bob", "is_admin": True}
    assert admin.json("users", "show", "bob")["user"]["is_admin"] is True
    admin.json("users", "set-admin", "bob", "false")
    assert admin.json("users", "disable", "bob") == {"username": "bob", "disabled": True}
    assert admin.json("users", "show", "bob")["user"]["disabled"] is True
    assert httpx.get(f"{server.url}/api/2.0/mlflow/users/current", auth=("bob", "first-Passw0rd-long"),
                     timeout=30).status_code == 401
    admin.json("users", "enable", "bob")
    admin.json("users", "set-password", "bob", "--password-stdin", input="second-Passw0rd-long\n")
    me = httpx.get(f"{server.url}/api/2.0/mlflow/users/current", auth=("bob", "second-Passw0rd-long"), timeout=30)
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "bob"

    assert admin.json("users", "delete", "bob", "--yes") == {"username": "bob", "deleted": True}
    gone = admin("users", "show", "bob")
    assert gone.returncode == 3
    assert "bob not found" in gone.stderr


def test_service_account_token_for_ci(admin: Mlgate, server):
    account = admin.json("service-accounts", "create", "ci-bot")["service_account"]
    assert account["kind"] == "service"
    assert set(account) == USER_FIELDS
    assert [a["username"] for a in admin.json("service-accounts", "list")["service_accounts"]] == ["ci-bot"]
    assert "ci-bot" not in [u["username"] for u in admin.json("users", "list")["users"]]

    issued = admin("tokens", "create", "ci", "--for", "ci-bot", "--days", "7")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()  # the secret alone on stdout, so $(...) captures it
    assert "\n" not in token
    assert "not shown again" in issued.stderr
    me = httpx.get(f"{server.url}/api/2.0/mlflow/users/current", headers={"Authorization": f"Bearer {token}"},
                   timeout=30)
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "ci-bot"
    assert me.json()["kind"] == "service"

    listed = admin.json("tokens", "list", "--for", "ci-bot")["tokens"]
    assert [t["name"] for t in listed] == ["ci"]
    assert listed[0]["revoked"] is False
    assert "token" not in listed[0]  # never the secret
    admin.json("tokens", "revoke", listed[0]["id"])
    assert admin.json("tokens", "list", "--for", "ci-bot")["tokens"][0]["revoked"] is True
    deadline = time.monotonic() + 5
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = httpx.get(f"{server.url}/api/2.0/mlflow/users/current",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
        time.sleep(0.2)
    assert status == 401

    wrong_kind = admin("service-accounts", "delete", "admin", "--yes")
    assert wrong_kind.returncode == 1
    assert "not a service account" in wrong_kind.stderr
    admin.json("service-accounts", "delete", "ci-bot", "--yes")
    assert admin.json("service-accounts", "list")["service_accounts"] == []


def test_group_grant_explain_walkthrough(admin: Mlgate, server):
    exp = _create_experiment(server, "team-a/churn")
    admin.json("users", "create", "alice", "--password-stdin", input="wonder-Land-2026x\n")
    assert admin.json("groups", "create", "team-a")["group"]["name"] == "team-a"
    admin.json("groups", "add-member", "team-a", "alice")
    assert {"name": "team-a", "members": ["alice"]}.items() <= \
        next(g for g in admin.json("groups", "list")["groups"] if g["name"] == "team-a").items()
    grant = admin.json("perms", "grant", "--group", "team-a", "--experiment-name", "team-a/*", "EDIT")["grant"]
    assert set(grant) == GRANT_FIELDS
    assert (grant["subject"], grant["resource"], grant["permission"]) == (
        "group:team-a", "experiment-name:team-a/*", "EDIT")
    assert [g["id"] for g in admin.json("perms", "list", "--group", "team-a")["grants"]] == [grant["id"]]

    text = admin("perms", "explain", "--user", "alice", "--experiment", exp, "--action", "EDIT")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"ALLOWED: user:alice EDIT on experiment {exp} (team-a/churn)")
    assert f"rule:   api-grant:{grant['id']}" in text.stdout
    explained = admin.json("perms", "explain", "--user", "alice", "--experiment", exp, "--action", "MANAGE")
    assert explained["allowed"] is False
    assert explained["rule"] == f"api-grant:{grant['id']}"
    assert explained["resource"] == {"type": "experiment", "id": exp, "name": "team-a/churn"}
    # --workspace reaches the server: the experiment lives in 'default', so it is missing from another one.
    assert admin.json("perms", "explain", "--user", "alice", "--experiment", exp, "--action", "EDIT",
                      "--workspace", "default")["allowed"] is True
    elsewhere = admin("perms", "explain", "--user", "alice", "--experiment", exp, "--action", "EDIT",
                      "--workspace", "team-x")
    assert elsewhere.returncode == EXIT_NOT_FOUND, elsewhere.stderr
    assert "in workspace 'team-x'" in elsewhere.stderr
    # The grant really applies: alice can log to the experiment.
    run = httpx.post(f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": exp},
                     auth=("alice", "wonder-Land-2026x"), timeout=30)
    assert run.status_code == 200, run.text

    admin.json("groups", "remove-member", "team-a", "alice")
    after = admin.json("perms", "explain", "--user", "alice", "--experiment-name", "team-a/churn", "--action", "READ")
    assert after["allowed"] is False
    assert after["rule"] == "default_permission"

    admin.json("perms", "revoke", "--group", "team-a", "--experiment-name", "team-a/*")
    assert admin.json("perms", "list", "--group", "team-a")["grants"] == []
    admin.json("groups", "delete", "team-a", "--yes")
    assert "team-a" not in [g["name"] for g in admin.json("groups", "list")["groups"]]


def test_failure_modes_have_their_exit_codes(admin: Mlgate, server, tmp_path):
    admin.json("users", "create", "carol", "--password-stdin", input="not-An-admin-77\n")
    token = admin("tokens", "create", "t", "--for", "carol").stdout.strip()
    denied = admin("users", "list", MLGATE_TOKEN=token)
    assert denied.returncode == 4
    assert "only administrators" in denied.stderr
    assert "needs an administrator" in denied.stderr

    for args in (("users", "show", "ghost"), ("perms", "explain", "--user", "ghost", "--experiment", "0",
                                              "--action", "READ"),
                 ("groups", "add-member", "no-such-group", "carol"), ("groups", "add-member", "no-such-group",
                                                                        "ghost"),
                 ("perms", "grant", "--user", "ghost", "--experiment", "0", "READ"),
                 ("perms", "revoke", "--user", "carol", "--experiment", "0"),
                 ("tokens", "list", "--for", "ghost")):
        result = admin(*args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("mlgate: ")
        assert "not found" in result.stderr or "exists" in result.stderr

    both = admin("perms", "grant", "--user", "carol", "--group", "g", "--experiment", "0", "READ")
    assert both.returncode == 2
    assert "exactly one subject" in both.stderr
    bad_level = admin("perms", "grant", "--user", "carol", "--experiment", "0", "WRITE")
    assert bad_level.returncode == 2
    bad_glob = admin("perms", "grant", "--user", "carol", "--experiment", "x1", "READ")
    assert bad_glob.returncode == 1
    assert "decimal number" in bad_glob.stderr

    fresh = Mlgate(tmp_path / "none.json")
    no_server = fresh("users", "list")
    assert no_server.returncode == 2
    assert "--server" in no_server.stderr
    unreachable = fresh("users", "list", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
    # A stored token is only ever sent to the server it was issued by.
    elsewhere = Mlgate(admin.env["MLGATE_CONFIG"])("users", "list", "--server", server.url + "/")
    assert elsewhere.returncode == 0
    other = Mlgate(admin.env["MLGATE_CONFIG"])("users", "list", "--server", "http://localhost:9")
    assert other.returncode == 1


def test_audit_list_tail_and_export(admin: Mlgate, server):
    admin.json("groups", "create", "audited")
    records = admin.json("audit", "list", "--action", "group.create", "--since", "10m")["records"]
    assert records
    assert set(records[-1]) == AUDIT_FIELDS
    assert (records[-1]["actor"], records[-1]["target"], records[-1]["outcome"]) == (
        "admin", "audited", "success")  # the bare name, as sign-ins spell it
    assert admin.json("audit", "list", "--action", "group.create", "--until", "2000-01-01")["records"] == []

    tail = subprocess.Popen([*admin.command, "audit", "tail", "--lines", "0", "--interval", "0.2",
                             "--stop-after", "1", "--action", "group.delete", "--output", "json"],
                            env=admin.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # let tail take its starting point before the event
        admin.json("groups", "delete", "audited", "--yes")
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    followed = json.loads(out.strip())
    assert (followed["action"], followed["target"]) == ("group.delete", "audited")

    exported = admin("audit", "export", "--action", "group.create")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert exported.returncode == 0
    assert lines
    assert all(r["action"] == "group.create" for r in lines)
    assert [r["id"] for r in lines] == sorted(r["id"] for r in lines)
    csv_out = admin("audit", "export", "--format", "csv", "--actor", "admin", "--outcome", "success")
    assert csv_out.stdout.splitlines()[0] == "id,at,actor,action,target,client_address,outcome,reason,workspace"
    bad_time = admin("audit", "list", "--since", "yesterday-ish")
    assert bad_time.returncode == 2
    assert "Invalid time" in bad_time.stderr
