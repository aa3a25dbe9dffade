"""``mlgate policy export|plan|apply``: stored groups and grants as a policy file, round-tripped between servers."""

from __future__ import annotations

import httpx
import yaml

from tests.cli.conftest import Mlgate
from tests.conftest import start_server


def _accounts(cli: Mlgate) -> None:
    cli.json("users", "create", "erin", "--password-stdin", input="Sync-pass-word-1\n")
    cli.json("service-accounts", "create", "ci-sync")


def _model(server, name: str) -> None:
    # A stored grant on one registered model names the model (its stable id): the model must exist (#18).
    made = httpx.post(f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": name},
                      auth=server.admin_auth, timeout=30)
    assert made.status_code == 200, made.text


def test_export_apply_to_a_fresh_server_and_export_again_is_identical(admin: Mlgate, server, tmp_path):
    _accounts(admin)
    admin.json("groups", "create", "team-a")
    admin.json("groups", "add-member", "team-a", "erin")
    admin.json("groups", "add-member", "team-a", "ci-sync")
    admin.json("groups", "create", "empty-group")
    _model(server, "churn")
    admin.json("perms", "grant", "--group", "team-a", "--experiment-name", "team-a/*", "EDIT")
    admin.json("perms", "grant", "--user", "erin", "--model", "churn", "READ")
    admin.json("perms", "grant", "--service", "ci-sync", "--model-name", "ci-*", "MANAGE")

    exported = admin("policy", "export")
    assert exported.returncode == 0, exported.stderr
    document = yaml.safe_load(exported.stdout)
    assert document["access"]["groups"] == {"empty-group": [], "team-a": ["erin", "service:ci-sync"]}
    assert {(g["principal"], g["resource"], g["permission"]) for g in document["access"]["grants"]} == {
        ("group:team-a", "experiment-name:team-a/*", "EDIT"), ("user:erin", "model:churn", "READ"),
        ("service:ci-sync", "model-name:ci-*", "MANAGE")}
    path = tmp_path / "access.yaml"
    path.write_text(exported.stdout)
    assert admin("policy", "validate", str(path)).returncode == 0
    assert admin.json("policy", "plan", str(path)) == {"changes": []}

    fresh = start_server(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        other = Mlgate(tmp_path / "fresh-config.json", MLGATE_SERVER=fresh.url)
        login = other("login", "--username", fresh.admin_username, "--password-stdin",
                      input=fresh.admin_password + "\n")
        assert login.returncode == 0, login.stderr
        _accounts(other)
        _model(fresh, "churn")
        planned = other("policy", "plan", str(path))
        assert planned.returncode == 0, planned.stderr
        assert "+ group team-a" in planned.stdout
        assert "+ grant group:team-a experiment-name:team-a/* EDIT" in planned.stdout
        assert "Plan: 7 to add, 0 to change, 0 to remove." in planned.stdout
        applied = other.json("policy", "apply", str(path), "--yes")
        assert applied["applied"] is True
        assert len(applied["changes"]) == 7
        again = other("policy", "export")
        assert again.stdout == exported.stdout
        # The applied memberships are real ones, as `users show` reports them.
        assert other.json("users", "show", "erin")["user"]["groups"] == ["team-a"]
    finally:
        fresh.stop()


def test_apply_is_all_or_nothing_and_lists_every_problem(admin: Mlgate, tmp_path):
    before = admin("policy", "export").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "access:\n"
        "  groups:\n"
        "    newcomers: [nobody-here]\n"
        "  grants:\n"
        "    - {principal: 'group:newcomers', resource: 'experiment:1', permission: READ}\n"
        "    - {principal: 'group:not-declared', resource: 'experiment:1', permission: READ}\n"
        "    - {principal: 'user:ghost', resource: 'model:m', permission: EDIT}\n"
    )
    result = admin("policy", "apply", str(bad), "--yes")
    assert result.returncode == 1
    assert "access.groups.newcomers: no account nobody-here exists" in result.stderr
    assert "access.grants[1].principal: group not-declared is not in access.groups" in result.stderr
    assert "access.grants[2].principal: no account user:ghost exists" in result.stderr
    assert "access.grants[2].resource: Registered model 'm' does not exist" in result.stderr
    assert admin("policy", "export").stdout == before

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("version: 1\naccess:\n  grants:\n    - {principal: alice, resource: 'experiment:1', "
                       "permission: WRITE}\n  denies:\n    - {principal: 'user:a', resource: 'bogus'}\n")
    refused = admin("policy", "plan", str(invalid))
    assert refused.returncode == 1
    assert "access.grants[0].principal" in refused.stderr
    assert "access.grants[0].permission" in refused.stderr
    assert "access.denies[0].resource" in refused.stderr

    server_only = tmp_path / "denies.yaml"
    server_only.write_text("version: 1\naccess:\n  denies:\n    - {principal: 'user:a', resource: 'experiment:1'}\n")
    kept = admin("policy", "apply", str(server_only), "--yes")
    assert kept.returncode == 1
    assert "access.denies: a server stores only access.groups and access.grants" in kept.stderr
    assert admin("policy", "export").stdout == before


def test_owner_grants_are_exported_and_removed_only_with_the_flag(admin: Mlgate, server, tmp_path):
    # Issue #18, finding 7: `policy apply` could never remove a creator's grant. With --owner-grants the
    # file is their desired state too, on the server (remote) and on the database (offline, --db).
    admin.json("users", "create", "olly", "--password-stdin", input="Owner-pass-word-1\n")
    made = [httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                       auth=("olly", "Owner-pass-word-1"), timeout=30).json()["experiment_id"]
            for name in ("olly-kept", "olly-dropped")]
    owned = {f"experiment:{i}" for i in made}
    plain = yaml.safe_load(admin("policy", "export").stdout)
    assert not owned & {g["resource"] for g in plain["access"]["grants"]}
    document = yaml.safe_load(admin("policy", "export", "--owner-grants").stdout)
    assert owned <= {g["resource"] for g in document["access"]["grants"] if g["principal"] == "user:olly"}
    document["access"]["grants"] = [g for g in document["access"]["grants"]
                                    if g["resource"] != f"experiment:{made[1]}"]
    path = tmp_path / "owners.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    planned = admin("policy", "plan", str(path), "--owner-grants")
    assert planned.returncode == 0, planned.stderr
    assert f"- grant user:olly experiment:{made[1]} MANAGE (owner)" in planned.stdout
    assert "Plan: 0 to add, 0 to change, 1 to remove." in planned.stdout
    applied = admin.json("policy", "apply", str(path), "--owner-grants", "--yes")
    assert [c["resource"] for c in applied["changes"]] == [f"experiment:{made[1]}"]
    offline = Mlgate(tmp_path / "offline.json")
    left = yaml.safe_load(offline("policy", "export", "--owner-grants", "--db", server.backend_store_uri).stdout)
    olly = {g["resource"] for g in left["access"]["grants"] if g["principal"] == "user:olly"}
    assert olly == {f"experiment:{made[0]}"}
