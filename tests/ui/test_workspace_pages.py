"""Workspaces in mlgate's own pages, as ordinary users: the switcher and the workspace administration pages.

alice holds a role in team-a and in team-b and switches between them (each page then shows that workspace's
experiments only; the other's id is missing). carol is in team-a only: no switcher, and a switch to team-b is
refused (404, audited). wendy administers team-a (a role with ``workspace`` MANAGE): she manages its roles and
members through the forms (CSRF-checked, redirect after post), and every attempt on team-b (its page, its
forms, a team-b role posted to team-a's form) is "not found", audited, and changes nothing.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.ui.conftest import BASE, csrf_of, ok, sign_in

A, A3 = "/api/2.0/mlflow", "/api/3.0/mlflow"
PASSWORD = "Unguessable-Pw-42c9e1"


def _role(api, workspace: str, name: str, *permissions: tuple[str, str]) -> int:
    role = ok(api.post(f"{A3}/roles/create", json={"workspace": workspace, "name": name}))["role"]["id"]
    for resource_type, permission in permissions:
        ok(api.post(f"{A3}/roles/permissions/add", json={"role_id": role, "resource_type": resource_type,
                                                         "resource_pattern": "*", "permission": permission}))
    return role


@pytest.fixture
def ws(app_factory):
    app = app_factory(enable_workspaces=True)
    with TestClient(app, base_url=BASE) as api:
        api.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        for user in ("alice", "carol", "wendy", "dave"):
            ok(api.post(f"{A}/users/create", json={"username": user, "password": PASSWORD}))
        roles, exps = {}, {}
        for name in ("team-a", "team-b"):
            assert api.post(f"{A3}/workspaces", json={"name": name}).status_code in (200, 201)
            roles[name] = _role(api, name, "members", ("experiment", "EDIT"))
            exps[name] = ok(api.post(f"{A}/experiments/create", json={"name": f"{name}-exp"},
                                     headers={"X-MLFLOW-WORKSPACE": name}))["experiment_id"]
        roles["admins"] = _role(api, "team-a", "admins", ("workspace", "MANAGE"))
        for role, user in ((roles["team-a"], "alice"), (roles["team-b"], "alice"), (roles["team-a"], "carol"),
                           (roles["admins"], "wendy")):
            ok(api.post(f"{A3}/roles/assign", json={"role_id": role, "username": user}))
        yield {"app": app, "api": api, "roles": roles, "exps": exps,
               "as": lambda user: sign_in(app, user, PASSWORD)}


def _switch(browser, workspace: str):
    token = csrf_of(browser.get("/experiments").text)
    return browser.post("/account/workspace", data={"workspace": workspace, "csrf_token": token})


def _denials(api, actor: str) -> list[dict]:
    return ok(api.get("/api/2.0/mlgate/audit/list", params={"actor": actor, "outcome": "denied"}))["records"]


def test_a_member_of_two_workspaces_switches_and_sees_one_at_a_time(ws):
    alice = ws["as"]("alice")
    start = alice.get("/experiments")
    assert 'id="workspace-switch"' in start.text
    assert [o for o in ("default", "team-a", "team-b") if f'<option value="{o}"' in start.text] == [
        "default", "team-a", "team-b"]
    assert "team-a-exp" not in start.text  # 'default' until she switches
    for here, other in (("team-a", "team-b"), ("team-b", "team-a")):
        switched = _switch(alice, here)
        assert switched.status_code == 303
        assert switched.headers["location"] == "/experiments"
        listing = alice.get("/experiments")
        assert f"{here}-exp" in listing.text
        assert f"{other}-exp" not in listing.text
        assert f'<option value="{here}" selected>' in listing.text
        assert alice.get(f"/experiments/{ws['exps'][here]}").status_code == 200
        # The other workspace's experiment by its id: missing, as any unknown id.
        missing = alice.get(f"/experiments/{ws['exps'][other]}")
        assert missing.status_code == 404
        assert f"{other}-exp" not in missing.text
    back = _switch(alice, "default")
    assert "mlgate_workspace" in back.headers["set-cookie"]  # cleared
    assert "team-b-exp" not in alice.get("/experiments").text


def test_files_download_from_the_workspace_the_pages_are_in(ws):
    api, alice = ws["api"], ws["as"]("alice")
    in_a = {"X-MLFLOW-WORKSPACE": "team-a"}
    run = ok(api.post(f"{A}/runs/create", json={"experiment_id": ws["exps"]["team-a"]}, headers=in_a))["run"]["info"]
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    put = api.put(f"/api/2.0/mlflow-artifacts/artifacts/{root}/note.txt", content=b"team-a's note", headers=in_a)
    assert put.status_code == 200, put.text
    link = f"/download-artifact?run_id={run['run_id']}&path=note.txt"
    assert alice.get(link).status_code == 404  # in 'default', team-a's run is missing
    _switch(alice, "team-a")
    assert link.replace("&", "&amp;") in alice.get(f"/runs/{run['run_id']}").text
    assert alice.get(link).content == b"team-a's note"
    _switch(alice, "team-b")
    assert alice.get(link).status_code == 404
    carol = ws["as"]("carol")
    carol.cookies.set("mlgate_workspace", "team-a")
    assert carol.get(link).content == b"team-a's note"  # a member of team-a, through its role
    assert ws["as"]("dave").get(link).status_code == 404  # in no workspace but 'default'


def test_a_member_of_one_workspace_cannot_switch_to_another(ws):
    carol = ws["as"]("carol")
    page = carol.get("/experiments")
    assert 'id="workspace-switch"' in page.text  # default and team-a
    assert "team-b" not in page.text
    refused = _switch(carol, "team-b")
    assert refused.status_code == 404
    assert "Workspace &#39;team-b&#39; not found." in refused.text
    assert "mlgate_workspace" not in refused.headers.get("set-cookie", "")
    reasons = [d["reason"] for d in _denials(ws["api"], "carol")]
    assert any("switch to a workspace the caller is not a member of" in r for r in reasons)
    # A cookie set by hand is decided like a header: not a member, so the pages answer "not found".
    carol.cookies.set("mlgate_workspace", "team-b")
    forged = carol.get("/experiments")
    assert forged.status_code == 404
    assert "team-b-exp" not in forged.text
    assert any("not a member of workspace 'team-b'" in d["reason"] for d in _denials(ws["api"], "carol"))


def test_the_switch_needs_the_session_form_token(ws):
    alice = ws["as"]("alice")
    refused = alice.post("/account/workspace", data={"workspace": "team-a", "csrf_token": "forged"})
    assert refused.status_code == 403
    assert "mlgate_workspace" not in refused.headers.get("set-cookie", "")
    cross_site = alice.post("/account/workspace", data={"workspace": "team-a",
                                                        "csrf_token": csrf_of(alice.get("/experiments").text)},
                            headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert "team-a-exp" not in alice.get("/experiments").text


def _form(browser, path: str, **fields):
    token = csrf_of(browser.get("/admin/workspaces/team-a").text)
    return browser.post(path, data={"csrf_token": token, **{k: str(v) for k, v in fields.items()}})


def _role_holders(api, role_id: int) -> list[int]:
    return [a["user_id"] for a in ok(api.get(f"{A3}/roles/users/list", params={"role_id": role_id}))["assignments"]]


def test_a_workspace_admin_manages_roles_and_members_of_their_workspace(ws):
    api, wendy = ws["api"], ws["as"]("wendy")
    listing = wendy.get("/admin/workspaces")
    assert listing.status_code == 200
    assert 'href="/admin/workspaces/team-a"' in listing.text
    assert "team-b" not in listing.text
    assert 'href="/admin"' not in listing.text  # no link to server administration
    page = wendy.get("/admin/workspaces/team-a")
    assert page.status_code == 200
    assert 'data-role="members"' in page.text
    assert "alice" in page.text
    # Create a role, give it a permission and a member, then take both back and delete it (each: 303, PRG).
    made = _form(wendy, "/admin/workspaces/team-a/roles/create", name="reviewers")
    assert made.status_code == 303
    assert made.headers["location"] == "/admin/workspaces/team-a?done=role"
    assert "The role was created." in wendy.get(made.headers["location"]).text
    role = next(r for r in ok(api.get(f"{A3}/roles/list", params={"workspace": "team-a"}))["roles"]
                if r["name"] == "reviewers")
    assert _form(wendy, "/admin/workspaces/team-a/permissions/add", role_id=role["id"], resource_type="experiment",
                 resource_pattern="team-a-*", permission="READ").status_code == 303
    assert _form(wendy, "/admin/workspaces/team-a/members/assign", role_id=role["id"],
                 username="dave").status_code == 303
    dave = ws["as"]("dave")
    assert "team-a" in dave.get("/experiments").text  # now a member: the switcher offers team-a
    assert _switch(dave, "team-a").status_code == 303
    assert "team-a-exp" in dave.get("/experiments").text
    permission = ok(api.get(f"{A3}/roles/get", params={"role_id": role["id"]}))["role"]["permissions"][0]
    assert _form(wendy, "/admin/workspaces/team-a/permissions/remove", role_id=role["id"],
                 role_permission_id=permission["id"]).status_code == 303
    assert _form(wendy, "/admin/workspaces/team-a/members/unassign", role_id=role["id"],
                 username="dave").status_code == 303
    assert _role_holders(api, role["id"]) == []
    assert _form(wendy, "/admin/workspaces/team-a/roles/delete", role_id=role["id"]).status_code == 303
    assert "reviewers" not in wendy.get("/admin/workspaces/team-a").text
    # A refusal of the roles API's own rules shows on the page (an account that does not exist).
    shown = _form(wendy, "/admin/workspaces/team-a/members/assign", role_id=ws["roles"]["team-a"], username="nobody")
    assert shown.status_code == 404
    assert "User with username=nobody not found." in shown.text
    # Each change was audited by the roles API's handler, in team-a.
    actions = {r["action"] for r in ok(api.get("/api/2.0/mlgate/audit/list",
                                               params={"actor": "user:wendy", "workspace": "team-a"}))["records"]}
    assert {"role.create", "role.permission.add", "role.assign", "role.unassign", "role.permission.remove",
            "role.delete"} <= actions


def test_a_workspace_admin_cannot_manage_another_workspace(ws):
    api, wendy, roles = ws["api"], ws["as"]("wendy"), ws["roles"]
    before = ok(api.get(f"{A3}/roles/list", params={"workspace": "team-b"}))["roles"]
    holders = _role_holders(api, roles["team-b"])
    assert wendy.get("/admin/workspaces/team-b").status_code == 404
    assert wendy.get("/admin/workspaces/default").status_code == 404
    attempts = [
        ("/admin/workspaces/team-b/roles/create", {"name": "sneaky"}),
        ("/admin/workspaces/team-b/members/assign", {"role_id": roles["team-b"], "username": "wendy"}),
        ("/admin/workspaces/team-b/roles/delete", {"role_id": roles["team-b"]}),
        # team-b's role through team-a's forms, which wendy may use:
        ("/admin/workspaces/team-a/members/assign", {"role_id": roles["team-b"], "username": "wendy"}),
        ("/admin/workspaces/team-a/members/unassign", {"role_id": roles["team-b"], "username": "alice"}),
        ("/admin/workspaces/team-a/roles/delete", {"role_id": roles["team-b"]}),
        ("/admin/workspaces/team-a/permissions/add", {"role_id": roles["team-b"], "resource_type": "experiment",
                                                      "resource_pattern": "*", "permission": "MANAGE"}),
    ]
    for path, fields in attempts:
        answer = _form(wendy, path, **fields)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "team-b-exp" not in answer.text
    assert ok(api.get(f"{A3}/roles/list", params={"workspace": "team-b"}))["roles"] == before
    assert _role_holders(api, roles["team-b"]) == holders
    reasons = [d["reason"] for d in _denials(api, "wendy")]
    assert sum("manage a workspace the caller does not administer" in r for r in reasons) >= 4
    in_team_b = ok(api.get("/api/2.0/mlgate/audit/list", params={"actor": "wendy", "outcome": "denied",
                                                                 "workspace": "team-b"}))["records"]
    assert len(in_team_b) == 4  # the page and the three forms of team-b, found under team-b's name
    assert sum("is not a role of workspace 'team-a'" in r for r in reasons) == 4
    # Server administration stays with server administrators.
    assert wendy.get("/admin").status_code in (403, 404)


def test_members_without_manage_see_no_administration(ws):
    alice = ws["as"]("alice")
    assert 'href="/admin/workspaces"' not in alice.get("/experiments").text
    assert "You administer no workspace." in alice.get("/admin/workspaces").text
    assert alice.get("/admin/workspaces/team-a").status_code == 404
    token = csrf_of(alice.get("/experiments").text)
    refused = alice.post("/admin/workspaces/team-a/roles/create", data={"name": "mine", "csrf_token": token})
    assert refused.status_code == 404
    assert [r["name"] for r in ok(ws["api"].get(f"{A3}/roles/list", params={"workspace": "team-a"}))["roles"]] == [
        "members", "admins"]


def test_without_workspaces_the_pages_show_no_switcher(ui):
    page = ui["reader"]().get("/experiments")
    assert "workspace-switch" not in page.text
    assert ui["reader"]().get("/admin/workspaces").status_code == 501
