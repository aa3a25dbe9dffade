"""`perms revoke` takes the ids `perms list` and `perms explain` print; `perms explain --service`."""

from __future__ import annotations

import httpx

from tests.cli.conftest import Mlgate


def _experiment(server, name: str) -> str:
    response = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                          auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def test_explain_for_a_service_account_and_revoke_by_listed_id(admin: Mlgate, server):
    exp = _experiment(server, "svc-team/churn")
    admin.json("service-accounts", "create", "svc-bot")
    grant = admin.json("perms", "grant", "--service", "svc-bot", "--experiment-name", "svc-team/*", "EDIT")["grant"]
    explained = admin.json("perms", "explain", "--service", "svc-bot", "--experiment", exp, "--action", "EDIT")
    assert explained["allowed"] is True
    assert explained["rule"] == f"api-grant:{grant['id']}"

    table = admin("perms", "list", "--service", "svc-bot")
    listed_id = table.stdout.splitlines()[1].split()[0]  # the ID column as printed
    assert listed_id == str(grant["id"])
    revoked = admin("perms", "revoke", listed_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "revoked service:svc-bot on experiment-name:svc-team/*"
    assert admin.json("perms", "list", "--service", "svc-bot")["grants"] == []
    after = admin.json("perms", "explain", "--service", "svc-bot", "--experiment", exp, "--action", "EDIT")
    assert after["allowed"] is False


def test_revoke_by_the_rule_name_explain_prints(admin: Mlgate, server):
    admin.json("groups", "create", "ids-team")
    grant = admin.json("perms", "grant", "--group", "ids-team", "--model-name", "ids-*", "READ")["grant"]
    assert admin.json("perms", "revoke", f"api-grant:{grant['id']}")["revoked"] is True
    assert admin.json("perms", "list", "--group", "ids-team")["grants"] == []


def test_revoke_id_errors(admin: Mlgate):
    unknown = admin("perms", "revoke", "999999")
    assert unknown.returncode == 3
    assert unknown.stderr.strip() == "mlgate: No grant has the ID '999999'; `mlgate perms list` shows the IDs."
    both = admin("perms", "revoke", "1", "--user", "x", "--experiment", "0")
    assert both.returncode == 2
    neither = admin("perms", "explain", "--experiment", "0", "--action", "READ")
    assert neither.returncode == 2
    assert "--user, --service" in neither.stderr


def test_listings_and_exports_show_the_experiment_name_beside_its_id(admin: Mlgate, server):
    exp = _experiment(server, "named-team/churn")
    admin.json("groups", "create", "named-team")
    granted = admin("perms", "grant", "--group", "named-team", "--experiment", exp, "READ")
    assert granted.stdout.strip() == f"granted READ on experiment:{exp} (named-team/churn) to group:named-team"

    listed = admin.json("perms", "list", "--group", "named-team")["grants"]
    assert [(g["resource"], g["resource_name"]) for g in listed] == [(f"experiment:{exp}", "named-team/churn")]
    table = admin("perms", "list", "--group", "named-team").stdout.splitlines()
    assert f"experiment:{exp} (named-team/churn)" in table[1]
    revoke_by_listed_id = table[1].split()[0]

    # The export keeps the id (what a grant means) and names the experiment in a comment (what a reader needs).
    exported = admin("policy", "export").stdout
    assert f"  resource: experiment:{exp}  # named-team/churn\n" in exported
    assert "# named-team/churn" not in admin("policy", "export", "--output", "json").stdout

    # A rename shows at once: the grant follows the id.
    renamed = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/update", auth=server.admin_auth, timeout=30,
                         json={"experiment_id": exp, "new_name": "named-team/churn-v2"})
    assert renamed.status_code == 200, renamed.text
    assert admin.json("perms", "list", "--group", "named-team")["grants"][0]["resource_name"] == "named-team/churn-v2"

    assert admin("perms", "revoke", revoke_by_listed_id).returncode == 0
    assert admin.json("perms", "list", "--group", "named-team")["grants"] == []


def test_export_comment_cannot_break_out_of_its_line():
    from gateway.commands.policy import with_name_comments

    text = "access:\n  grants:\n  - principal: group:a\n    resource: experiment:7\n    permission: READ\n"
    out = with_name_comments(text, {"experiment:7": "x\npermission: MANAGE"})
    assert out.splitlines()[3] == "    resource: experiment:7  # x\\npermission: MANAGE"
    assert out.count("\n") == text.count("\n")
