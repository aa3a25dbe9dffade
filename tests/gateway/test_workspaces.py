"""Workspaces through the real app: isolation (hidden == missing, administrators included), membership
through roles, header spoofing, the workspaces and roles APIs, and the feature switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.tracking.otlp_builders import trace_info_body

A = "/api/2.0/mlflow"
B = "/api/3.0/mlflow"
H = "X-MLFLOW-WORKSPACE"
PASSWORD = "Unguessable-Pw-9c1e77aa31"


def _ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def _user_client(app, admin, name: str) -> TestClient:
    _ok(admin.post(f"{A}/users/create", json={"username": name, "password": PASSWORD}))
    token = _ok(admin.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1, "username": name}))
    client = TestClient(app, base_url="http://127.0.0.1:5000")
    client.headers["Authorization"] = f"Bearer {token['token']}"
    return client


def _in(client: TestClient, workspace: str | None) -> TestClient:
    """The same client, naming ``workspace`` on every request (None: no header)."""
    client.headers.pop(H, None)
    if workspace is not None:
        client.headers[H] = workspace
    return client


def _team_role(admin, workspace: str, username: str, *, manage_workspace: bool = False) -> int:
    role = _ok(admin.post(f"{B}/roles/create", json={"workspace": workspace, "name": "members"}))["role"]
    for resource_type in ("experiment", "registered_model"):
        _ok(admin.post(f"{B}/roles/permissions/add", json={
            "role_id": role["id"], "resource_type": resource_type, "resource_pattern": "*", "permission": "EDIT"}))
    if manage_workspace:
        _ok(admin.post(f"{B}/roles/permissions/add", json={
            "role_id": role["id"], "resource_type": "workspace", "resource_pattern": "*", "permission": "MANAGE"}))
    _ok(admin.post(f"{B}/roles/assign", json={"username": username, "role_id": role["id"]}))
    return role["id"]


@pytest.fixture
def teams(app_factory):
    """team-a (alice, its workspace administrator) and team-b (bob), each with an experiment, a run, an
    artifact, a trace and a registered model; carol has no role anywhere."""
    app = app_factory(enable_workspaces=True)
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        clients = {"admin": admin}
        for name in ("alice", "bob", "carol"):
            clients[name] = _user_client(app, admin, name)
        for workspace in ("team-a", "team-b"):
            _ok(admin.post(f"{B}/workspaces", json={"name": workspace, "description": workspace}), 201)
        roles = {"team-a": _team_role(admin, "team-a", "alice", manage_workspace=True),
                 "team-b": _team_role(admin, "team-b", "bob")}
        made = {}
        for user, workspace in (("alice", "team-a"), ("bob", "team-b")):
            c = _in(clients[user], workspace)
            exp = _ok(c.post(f"{A}/experiments/create", json={"name": f"{user}-exp"}))["experiment_id"]
            run = _ok(c.post(f"{A}/runs/create", json={"experiment_id": exp}))["run"]["info"]["run_id"]
            # A workspace's artifacts live under its own prefix (tracking's default location outside 'default').
            _ok(c.put(f"/api/2.0/mlflow-artifacts/artifacts/workspaces/{workspace}/{exp}/{run}/artifacts/x.txt",
                      content=b"secret"))
            trace = "tr-" + (("a" if user == "alice" else "b") * 32)
            _ok(c.post(f"{B}/traces", json=trace_info_body(trace, exp)))
            _ok(c.post(f"{A}/registered-models/create", json={"name": f"{user}-model"}))
            made[user] = {"exp": exp, "run": run, "trace": trace, "model": f"{user}-model", "workspace": workspace}
        yield app, clients, made, roles


def _reads(made: dict) -> list[tuple[str, str, dict]]:
    """Every point read of one team's objects (method, path, params)."""
    exp, run = made["exp"], made["run"]
    return [
        ("get", f"{A}/experiments/get", {"experiment_id": exp}),
        ("get", f"{A}/experiments/get-by-name", {"experiment_name": f"{made['model'][:-6]}-exp"}),
        ("get", f"{A}/runs/get", {"run_id": run}),
        ("get", f"{A}/metrics/get-history", {"run_id": run, "metric_key": "m"}),
        ("get", f"{A}/artifacts/list", {"run_id": run}),
        ("get", f"/api/2.0/mlflow-artifacts/artifacts/workspaces/{made['workspace']}/{exp}/{run}/artifacts/x.txt", {}),
        ("get", "/get-artifact", {"run_id": run, "path": "x.txt"}),
        ("get", f"{B}/traces/{made['trace']}", {}),
        ("get", f"{A}/registered-models/get", {"name": made["model"]}),
    ]


def _missing_twin(method: str, path: str, params: dict) -> tuple[str, str, dict]:
    """The same request naming ids that exist nowhere."""
    swap = {"experiment_id": "987654", "run_id": "f" * 32, "name": "no-such-model",
            "experiment_name": "no-such-experiment"}
    return method, path, {k: swap.get(k, v) for k, v in params.items()}


def _answer(client, method, path, params):
    response = getattr(client, method)(path, params=params)
    return response.status_code, response.content


@pytest.mark.parametrize("caller", ["bob", "admin"])
def test_another_workspaces_objects_are_missing_for_everyone(teams, caller):
    _, c, made, _ = teams
    client = _in(c[caller], "team-b")
    for method, path, params in _reads(made["alice"]):
        status, body = _answer(client, method, path, params)
        assert status == 404, (path, body)
        assert b"RESOURCE_DOES_NOT_EXIST" in body, (path, body)
    # In its own workspace the same requests succeed (the test can fail: ids are right).
    owner = _in(c["alice"], "team-a")
    for method, path, params in _reads(made["alice"]):
        if "get-history" in path:
            continue
        assert _answer(owner, method, path, params)[0] == 200, path


def test_a_non_administrator_cannot_tell_hidden_from_missing(teams):
    _, c, made, _ = teams
    bob = _in(c["bob"], "team-b")
    for method, path, params in _reads(made["alice"])[:3] + _reads(made["alice"])[-1:]:
        assert _answer(bob, method, path, params) == _answer(bob, *_missing_twin(method, path, params)), path


def test_searches_show_only_the_workspace(teams):
    _, c, made, _ = teams
    for caller in ("bob", "admin"):
        client = _in(c[caller], "team-b")
        names = [e["name"] for e in _ok(client.post(f"{A}/experiments/search", json={}))["experiments"]]
        assert names == ["bob-exp"], caller
        runs = _ok(client.post(f"{A}/runs/search", json={"experiment_ids": [made["alice"]["exp"],
                                                                            made["bob"]["exp"]]}))["runs"]
        assert [r["info"]["run_id"] for r in runs] == [made["bob"]["run"]]
        models = _ok(client.get(f"{A}/registered-models/search"))["registered_models"]
        assert [m["name"] for m in models] == ["bob-model"]
        traces = _ok(client.post(f"{B}/traces/search", json={"locations": [
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": made["alice"]["exp"]}},
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": made["bob"]["exp"]}}]}))
        assert [t["trace_id"] for t in traces.get("traces", [])] == [made["bob"]["trace"]]
    # The default workspace (no header) holds neither team's objects, and keeps its Default experiment.
    admin = _in(c["admin"], None)
    names = [e["name"] for e in _ok(admin.post(f"{A}/experiments/search", json={}))["experiments"]]
    assert names == ["Default"]


def test_writes_into_another_workspace_are_refused_as_missing(teams):
    _, c, made, _ = teams
    for caller in ("bob", "admin"):
        client = _in(c[caller], "team-b")
        logged = client.post(f"{A}/runs/log-metric", json={"run_id": made["alice"]["run"], "key": "m", "value": 1,
                                                           "timestamp": 1})
        assert logged.status_code == 404, logged.text
        created = client.post(f"{A}/runs/create", json={"experiment_id": made["alice"]["exp"]})
        assert created.status_code == 404, created.text
        version = client.post(f"{A}/model-versions/create", json={"name": made["alice"]["model"],
                                                                  "source": f"runs:/{made['bob']['run']}/m"})
        assert version.status_code == 404, version.text
        # A version of bob's model from alice's run: the source is in another workspace.
        version = client.post(f"{A}/model-versions/create", json={"name": made["bob"]["model"],
                                                                  "source": f"runs:/{made['alice']['run']}/m"})
        assert version.status_code == 404, version.text


def test_a_spoofed_header_never_widens_access(teams):
    _, c, made, _ = teams
    bob = _in(c["bob"], "team-a")  # bob holds no role in team-a
    refused = bob.get(f"{A}/experiments/get", params={"experiment_id": made["alice"]["exp"]})
    unknown = _in(c["carol"], "no-such-team").get(f"{A}/experiments/get",
                                                   params={"experiment_id": made["alice"]["exp"]})
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["error_code"] == unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert refused.json()["message"] == "Workspace 'team-a' not found."
    assert _in(c["carol"], "team-a").post(f"{A}/experiments/search", json={}).status_code == 404
    assert _in(c["bob"], "team-a").get(f"{B}/workspaces/team-a").status_code == 404
    # Malformed names are refused before any lookup.
    assert _in(c["bob"], "Team_A").get(f"{A}/experiments/get", params={"experiment_id": "0"}).status_code == 400


def test_list_workspaces_shows_only_the_callers(teams):
    _, c, _, _ = teams
    names = {u: [w["name"] for w in _ok(_in(c[u], None).get(f"{B}/workspaces"))["workspaces"]]
             for u in ("admin", "alice", "bob", "carol")}
    assert names == {"admin": ["default", "team-a", "team-b"], "alice": ["default", "team-a"],
                     "bob": ["default", "team-b"], "carol": ["default"]}
    assert _ok(_in(c["alice"], None).get(f"{B}/workspaces/team-a"))["workspace"]["name"] == "team-a"
    assert _in(c["alice"], None).get(f"{B}/workspaces/team-b").status_code == 404


def test_a_workspace_administrator_manages_only_their_workspace(teams):
    _, c, _, roles = teams
    alice = _in(c["alice"], "team-a")
    # Her own workspace: a new role, given to carol, makes carol a member.
    role = _ok(alice.post(f"{B}/roles/create", json={"workspace": "team-a", "name": "readers"}))["role"]
    _ok(alice.post(f"{B}/roles/permissions/add", json={"role_id": role["id"], "resource_type": "experiment",
                                                       "resource_pattern": "*", "permission": "READ"}))
    _ok(alice.post(f"{B}/roles/assign", json={"username": "carol", "role_id": role["id"]}))
    names = [e["name"] for e in _ok(_in(c["carol"], "team-a").post(f"{A}/experiments/search", json={}))["experiments"]]
    assert names == ["alice-exp"]
    assert [u["user_id"] for u in _ok(alice.get(f"{B}/roles/users/list", params={"role_id": role["id"]}))[
        "assignments"]]
    # The other workspace: its roles are missing to her, its name too.
    for method, path, kwargs in (
            ("post", f"{B}/roles/assign", {"json": {"username": "alice", "role_id": roles["team-b"]}}),
            ("get", f"{B}/roles/get", {"params": {"role_id": roles["team-b"]}}),
            ("delete", f"{B}/roles/delete", {"json": {"role_id": roles["team-b"]}}),
            ("post", f"{B}/roles/create", {"json": {"workspace": "team-b", "name": "mine"}}),
            ("get", f"{B}/roles/list", {"params": {"workspace": "team-b"}})):
        response = alice.request(method.upper(), path, **kwargs)
        assert response.status_code == 404, (path, response.text)
    # Server-wide settings stay the server administrators'.
    assert alice.post(f"{B}/workspaces", json={"name": "team-c"}).status_code == 403
    assert alice.delete(f"{B}/workspaces/team-a").status_code == 403
    assert alice.post(f"{A}/users/create", json={"username": "mallory", "password": PASSWORD}).status_code == 403
    assert alice.get(f"{B}/roles/list").status_code == 403  # every role of every workspace
    # bob, a member without the workspace permission, manages nothing of team-b's roles, and cannot probe
    # account names through them.
    bob = _in(c["bob"], "team-b")
    for username in ("carol", "no-such-user"):
        refused = bob.post(f"{B}/roles/assign", json={"username": username, "role_id": roles["team-b"]})
        assert refused.status_code == 404
        assert refused.json()["message"] == f"Role with id={roles['team-b']} not found."


def test_role_groups_cannot_be_claimed(teams):
    _, c, made, roles = teams
    admin = _in(c["admin"], None)
    # An administrator-made (or identity-provider) group named like a role group gives nothing.
    _ok(admin.post("/api/2.0/mlgate/groups/create", json={"name": f"role@{roles['team-a']}"}))
    _ok(admin.post("/api/2.0/mlgate/groups/add-member", json={"group": f"role@{roles['team-a']}",
                                                              "username": "carol"}))
    assert _in(c["carol"], "team-a").get(f"{A}/experiments/get",
                                         params={"experiment_id": made["alice"]["exp"]}).status_code == 404
    assert "team-a" not in [w["name"] for w in _ok(_in(c["carol"], None).get(f"{B}/workspaces"))["workspaces"]]


def test_role_grants_hold_only_in_their_workspace(teams):
    _, c, made, _ = teams
    # alice also joins team-b as a reader: her team-a EDIT role must not let her write in team-b.
    admin = _in(c["admin"], None)
    role = _ok(admin.post(f"{B}/roles/create", json={"workspace": "team-b", "name": "readers"}))["role"]
    _ok(admin.post(f"{B}/roles/permissions/add", json={"role_id": role["id"], "resource_type": "experiment",
                                                       "resource_pattern": "*", "permission": "READ"}))
    _ok(admin.post(f"{B}/roles/assign", json={"username": "alice", "role_id": role["id"]}))
    alice = _in(c["alice"], "team-b")
    assert alice.get(f"{A}/runs/get", params={"run_id": made["bob"]["run"]}).status_code == 200
    write = alice.post(f"{A}/runs/log-metric", json={"run_id": made["bob"]["run"], "key": "m", "value": 1,
                                                     "timestamp": 1})
    assert write.status_code == 403, write.text
    # Switching back, her own workspace still works.
    assert _in(c["alice"], "team-a").get(f"{A}/runs/get", params={"run_id": made["alice"]["run"]}).status_code == 200


def test_deleting_a_workspace_needs_it_empty(teams):
    _, c, _, _ = teams
    admin = _in(c["admin"], None)
    refused = admin.delete(f"{B}/workspaces/team-a")
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "INVALID_STATE"
    _ok(admin.post(f"{B}/workspaces", json={"name": "empty-one"}), 201)
    assert admin.delete(f"{B}/workspaces/empty-one").status_code == 204
    assert admin.get(f"{B}/workspaces/empty-one").status_code == 404
    assert admin.delete(f"{B}/workspaces/default").status_code == 400


def test_switched_off_workspaces_are_refused_and_default_works(client):
    assert client.get(f"{B}/server-info").json()["workspaces_enabled"] is False
    named = client.get(f"{A}/experiments/get", params={"experiment_id": "0"}, headers={H: "team-a"})
    assert named.status_code == 501
    assert named.json()["error_code"] == "FEATURE_DISABLED"
    assert client.get(f"{B}/workspaces").status_code == 501
    assert client.get(f"{A}/experiments/get", params={"experiment_id": "0"}, headers={H: "default"}).status_code == 200
    assert client.get(f"{A}/experiments/get", params={"experiment_id": "0"}).status_code == 200


def test_perms_explain_names_the_role_and_the_workspace(teams):
    _, c, made, roles = teams
    admin = _in(c["admin"], None)
    explained = _ok(admin.get("/api/2.0/mlgate/perms/explain", params={
        "username": "alice", "experiment_id": made["alice"]["exp"], "action": "EDIT"}))
    assert explained["allowed"] is True
    assert explained["rule"].startswith("api-grant:")  # the role permission's grant, decided by decide()
    assert explained["workspace"] == "team-a"
    assert explained["roles"] == [{"id": roles["team-a"], "name": "members", "group": f"role@{roles['team-a']}"}]
    # bob holds no role in team-a: nothing there for him.
    explained = _ok(admin.get("/api/2.0/mlgate/perms/explain", params={
        "username": "bob", "experiment_id": made["alice"]["exp"], "action": "READ"}))
    assert explained["allowed"] is False
    assert explained["roles"] == []



def test_perms_explain_in_a_named_workspace_decides_as_a_request_there(teams):
    # --workspace: as a request naming that workspace. bob holds a direct grant on alice's experiment but no
    # role in team-a: a request in team-a is refused before any grant, so explain must say denied there.
    _, c, made, _ = teams
    admin = _in(c["admin"], None)
    _ok(admin.post("/api/2.0/mlgate/grants/put", json={
        "subject": "user:bob", "resource": f"experiment:{made['alice']['exp']}", "permission": "READ"}))
    asked = {"username": "bob", "experiment_id": made["alice"]["exp"], "action": "READ"}
    assert _ok(admin.get("/api/2.0/mlgate/perms/explain", params=asked))["allowed"] is True
    explained = _ok(admin.get("/api/2.0/mlgate/perms/explain", params={**asked, "workspace": "team-a"}))
    assert explained["allowed"] is False
    assert "not a member of workspace 'team-a'" in explained["reason"]
    # alice, a member, is decided by her role there as before.
    explained = _ok(admin.get("/api/2.0/mlgate/perms/explain", params={**asked, "username": "alice",
                                                                      "workspace": "team-a"}))
    assert explained["allowed"] is True
    assert explained["workspace"] == "team-a"
    # Another workspace's experiment is missing from the named one, as for a request.
    missing = admin.get("/api/2.0/mlgate/perms/explain", params={**asked, "username": "alice", "workspace": "team-b"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = admin.get("/api/2.0/mlgate/perms/explain", params={**asked, "workspace": "Not A Name!"})
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_perms_explain_finds_a_registered_models_workspace(teams):
    # Grants name a model's stable id, so the explained resource's id is that id, not the name: the
    # workspace lookup by name found nothing and explained bob's model in 'default', without his role.
    _, c, made, roles = teams
    admin = _in(c["admin"], None)
    explained = _ok(admin.get("/api/2.0/mlgate/perms/explain", params={
        "username": "bob", "model": made["bob"]["model"], "action": "EDIT"}))
    assert explained["workspace"] == "team-b"
    assert explained["roles"] == [{"id": roles["team-b"], "name": "members", "group": f"role@{roles['team-b']}"}]
    assert explained["allowed"] is True

def test_a_deleted_account_takes_its_roles_along(teams):
    # Role assignments name "user:<name>", and names are reused: a new bob must not be a member of team-b
    # through the old one's role (deleting a group likewise takes its assignments: admin_store.delete_group).
    app, c, made, roles = teams
    admin = _in(c["admin"], None)
    _ok(admin.request("DELETE", f"{A}/users/delete", json={"username": "bob"}))
    new_bob = _in(_user_client(app, admin, "bob"), "team-b")
    assert new_bob.get(f"{A}/experiments/get", params={"experiment_id": made["bob"]["exp"]}).status_code == 404
    assert [w["name"] for w in _ok(_in(new_bob, None).get(f"{B}/workspaces"))["workspaces"]] == ["default"]
    assert _ok(admin.get(f"{B}/roles/users/list", params={"role_id": roles["team-b"]})).get("users", []) == []


def test_another_workspaces_role_patterns_do_not_block_creating_here(teams):
    # Attack (#18's create-claimed rule meets #20's roles): a role permission with a name pattern ("*" in
    # team-a and team-b) claimed every name server-wide, so nobody without that role could create an
    # experiment or a model anywhere else, 'default' included; any workspace administrator could do this.
    _, c, _, _ = teams
    carol = _in(c["carol"], None)
    assert carol.post(f"{A}/experiments/create", json={"name": "carol-exp"}).status_code == 200
    assert carol.post(f"{A}/registered-models/create", json={"name": "carol-model"}).status_code == 200
    bob = _in(c["bob"], None)
    assert bob.post(f"{A}/experiments/create", json={"name": "bob-default-exp"}).status_code == 200
    # Inside its own workspace a role's pattern still claims names: a member without it may not squat.
    admin = _in(c["admin"], None)
    role = _ok(admin.post(f"{B}/roles/create", json={"workspace": "team-b", "name": "forecasters"}))["role"]
    _ok(admin.post(f"{B}/roles/permissions/add", json={"role_id": role["id"], "resource_type": "experiment",
                                                       "resource_pattern": "forecast-*", "permission": "EDIT"}))
    _ok(admin.post(f"{A}/users/create", json={"username": "dave", "password": PASSWORD}))
    plain = _ok(admin.post(f"{B}/roles/create", json={"workspace": "team-b", "name": "readers"}))["role"]
    _ok(admin.post(f"{B}/roles/assign", json={"username": "dave", "role_id": plain["id"]}))
    token = _ok(admin.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1,
                                                             "username": "dave"}))["token"]
    dave = _in(TestClient(teams[0], base_url="http://127.0.0.1:5000",
                          headers={"Authorization": f"Bearer {token}"}), "team-b")
    squat = dave.post(f"{A}/experiments/create", json={"name": "forecast-q3"})
    assert squat.status_code == 403, squat.text


@pytest.mark.parametrize("role_id", [-152707458675259616, 0, 2**31, 10**30])
def test_a_role_id_out_of_range_is_missing_not_an_error(teams, role_id):
    # Found by the API fuzzer on PostgreSQL: an id beyond the INTEGER column's range was a 500.
    _, c, _, _ = teams
    admin = _in(c["admin"], None)
    for method, path, body in (("PATCH", f"{B}/roles/update", {"role_id": role_id, "name": "x"}),
                               ("DELETE", f"{B}/roles/delete", {"role_id": role_id}),
                               ("PATCH", f"{B}/roles/permissions/update",
                                {"role_permission_id": role_id, "permission": "READ"})):
        answer = admin.request(method, path, json=body)
        assert answer.status_code in (400, 404), (path, answer.text)


def _audit(admin, **filters) -> list[dict]:
    return _ok(admin.get("/api/2.0/mlgate/audit/list", params={"limit": 1000, **filters}))["records"]


def test_every_audit_record_carries_its_requests_workspace_and_can_be_filtered(teams):
    _app, clients, made, _roles = teams
    admin = _in(clients["admin"], None)
    # A denial inside team-a (alice may not read team-b's experiment id: it is missing here), a spoofed header
    # (carol names team-b, where she holds no role), a role change by team-a's workspace administrator.
    alice = _in(clients["alice"], "team-a")
    assert alice.get(f"{A}/experiments/get", params={"experiment_id": made["bob"]["exp"]}).status_code == 404
    assert _in(clients["carol"], "team-b").get(f"{A}/experiments/search",
                                               params={"max_results": 5}).status_code == 404
    _ok(alice.post(f"{B}/roles/create", json={"workspace": "team-a", "name": "readers"}))

    in_a = _audit(admin, workspace="team-a")
    assert in_a
    assert all(r["workspace"] == "team-a" for r in in_a)
    assert any(r["action"] == "authorize" and r["outcome"] == "denied" and r["actor"] == "alice" for r in in_a)
    assert any(r["action"] == "role.create" and r["actor"] == "user:alice" for r in in_a)
    probes = _audit(admin, workspace="team-b", actor="carol")
    assert [(r["action"], r["outcome"]) for r in probes] == [("authorize", "denied")]
    # Records of requests that named no workspace are in default; none leaks into another filter.
    assert all(r["workspace"] == "default" for r in _audit(admin, workspace="default"))
    assert not [r for r in _audit(admin, workspace="team-a") if r["actor"] == "carol"]


def test_experiment_names_are_unique_per_workspace(teams):
    # The same name in two workspaces is two experiments: created, found by name and renamed each in its own.
    _, c, made, _ = teams
    alice, bob = _in(c["alice"], "team-a"), _in(c["bob"], "team-b")
    mine = _ok(alice.post(f"{A}/experiments/create", json={"name": "churn"}))["experiment_id"]
    theirs = _ok(bob.post(f"{A}/experiments/create", json={"name": "churn"}))["experiment_id"]
    assert mine != theirs
    # Taken in its own workspace only, with MLflow's answer.
    again = alice.post(f"{A}/experiments/create", json={"name": "churn"})
    assert (again.status_code, again.json()["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    for client, expected in ((alice, mine), (bob, theirs)):
        found = _ok(client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "churn"}))
        assert found["experiment"]["experiment_id"] == expected
    # A rename is checked against its own workspace's names only.
    _ok(bob.post(f"{A}/experiments/update", json={"experiment_id": made["bob"]["exp"], "new_name": "alice-exp"}))
    clash = bob.post(f"{A}/experiments/update", json={"experiment_id": made["bob"]["exp"], "new_name": "churn"})
    assert clash.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    # 'default' (and a server administrator there) sees neither.
    missing = _in(c["admin"], None).get(f"{A}/experiments/get-by-name", params={"experiment_name": "churn"})
    assert missing.status_code == 404


def test_registered_model_and_prompt_names_are_unique_per_workspace(teams):
    # The same model or prompt name in two workspaces is two models: created, found, tagged, listed, renamed
    # and deleted each in its own; a name only another workspace holds answers as one that never existed.
    _, c, made, _ = teams
    alice, bob = _in(c["alice"], "team-a"), _in(c["bob"], "team-b")
    prompt = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    _ok(alice.post(f"{A}/registered-models/create", json={"name": "churn", "description": "a"}))
    _ok(alice.post(f"{A}/registered-models/create", json={"name": "summary", "tags": prompt}))
    _ok(bob.post(f"{A}/registered-models/create", json={"name": "churn", "description": "b"}))
    _ok(bob.post(f"{A}/registered-models/create", json={"name": "summary"}))  # a model here, a prompt in team-a
    again = alice.post(f"{A}/registered-models/create", json={"name": "churn"})
    assert (again.status_code, again.json()["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    _ok(bob.post(f"{A}/registered-models/set-tag", json={"name": "churn", "key": "team", "value": "b"}))
    for client, team in ((alice, "a"), (bob, "b")):
        model = _ok(client.get(f"{A}/registered-models/get", params={"name": "churn"}))["registered_model"]
        assert (model["description"], model.get("tags", [])) == (team, [{"key": "team", "value": "b"}] * (team == "b"))
    # team-a's prompt 'summary' neither hides team-b's model 'summary' nor shows in team-b's prompt list.
    for client, models, prompts in ((alice, [], ["summary"]), (bob, ["summary"], [])):
        found = _ok(client.get(f"{A}/registered-models/search", params={"filter": "name = 'summary'"}))
        assert [m["name"] for m in found.get("registered_models", [])] == models
        found = _ok(client.get(f"{A}/registered-models/search", params={
            "filter": "tags.`mlflow.prompt.is_prompt` = 'true'"}))
        assert [m["name"] for m in found.get("registered_models", [])] == prompts
    # Probing: team-a's model answers in team-b exactly as a name nobody has, and the name is free there.
    probe = bob.get(f"{A}/registered-models/get", params={"name": made["alice"]["model"]})
    never = bob.get(f"{A}/registered-models/get", params={"name": "never-made"})
    assert (probe.status_code, probe.json()) == (never.status_code, never.json())
    assert probe.status_code == 404
    _ok(bob.post(f"{A}/registered-models/rename", json={"name": "summary", "new_name": made["alice"]["model"]}))
    # Deleting team-b's churn leaves team-a's; 'default' (and its administrator) has neither.
    _ok(bob.request("DELETE", f"{A}/registered-models/delete", json={"name": "churn"}))
    assert bob.get(f"{A}/registered-models/get", params={"name": "churn"}).status_code == 404
    kept = _ok(alice.get(f"{A}/registered-models/get", params={"name": "churn"}))["registered_model"]
    assert kept["description"] == "a"
    assert _in(c["admin"], None).get(f"{A}/registered-models/get", params={"name": "churn"}).status_code == 404


def test_a_grant_by_name_does_not_reach_a_same_named_experiment_elsewhere(teams):
    # carol is a member of both workspaces, reading nothing through her roles. A grant by name made outside
    # a workspace's roles (experiment-name:shared-*) opens 'default''s experiment of that name, never the
    # same-named one of team-a or team-b; a role permission by name opens its own workspace's only.
    _, c, _, _ = teams
    admin = _in(c["admin"], None)
    for workspace in ("team-a", "team-b"):
        role = _ok(admin.post(f"{B}/roles/create", json={"workspace": workspace, "name": "guests"}))["role"]
        _ok(admin.post(f"{B}/roles/assign", json={"username": "carol", "role_id": role["id"]}))
        if workspace == "team-b":
            _ok(admin.post(f"{B}/roles/permissions/add", json={
                "role_id": role["id"], "resource_type": "experiment", "resource_pattern": "shared-*",
                "permission": "READ"}))
    ids = {}
    for workspace in (None, "team-a", "team-b"):
        ids[workspace] = _ok(_in(c["admin"], workspace).post(f"{A}/experiments/create",
                                                             json={"name": "shared-x"}))["experiment_id"]
    _ok(_in(c["admin"], None).post("/api/2.0/mlgate/grants/put", json={
        "subject": "user:carol", "resource": "experiment-name:shared-*", "permission": "EDIT"}))
    seen = {}
    for workspace in (None, "team-a", "team-b"):
        carol = _in(c["carol"], workspace)
        seen[workspace] = [e["experiment_id"] for e in
                           _ok(carol.post(f"{A}/experiments/search", json={})).get("experiments", [])
                           if e["name"] == "shared-x"]
        by_name = carol.get(f"{A}/experiments/get-by-name", params={"experiment_name": "shared-x"})
        tagged = carol.post(f"{A}/experiments/set-experiment-tag",
                            json={"experiment_id": ids[workspace], "key": "k", "value": "v"})
        seen[workspace].extend([by_name.status_code, tagged.status_code])
    # default: the direct grant (EDIT); team-a: nothing (404); team-b: its role's READ only (403 on a write).
    assert seen == {None: [ids[None], 200, 200], "team-a": [404, 404], "team-b": [ids["team-b"], 200, 403]}
    # A grant by id names one experiment and holds wherever it is.
    _ok(_in(c["admin"], None).post("/api/2.0/mlgate/grants/put", json={
        "subject": "user:carol", "resource": f"experiment:{ids['team-a']}", "permission": "READ"}))
    assert _in(c["carol"], "team-a").get(f"{A}/experiments/get",
                                         params={"experiment_id": ids["team-a"]}).status_code == 200


def test_a_workspaces_artifacts_live_under_its_own_prefix(teams):
    app, c, made, _ = teams
    alice = _in(c["alice"], "team-a")
    exp, run = made["alice"]["exp"], made["alice"]["run"]
    location = _ok(alice.get(f"{A}/experiments/get", params={"experiment_id": exp}))["experiment"]
    assert location["artifact_location"] == f"mlflow-artifacts:/workspaces/team-a/{exp}"
    root = Path(app.state.settings.artifacts_destination)
    assert (root / "workspaces" / "team-a" / exp / run / "artifacts" / "x.txt").read_bytes() == b"secret"
    assert not (root / exp).exists()
    # One place per experiment: the unprefixed path and another workspace's prefix name nothing, for its own
    # team and for an administrator alike (no second copy, no write into team-b's storage).
    for caller in ("alice", "admin"):
        client = _in(c[caller], "team-a")
        for prefix in ("", "workspaces/team-b/"):
            path = f"/api/2.0/mlflow-artifacts/artifacts/{prefix}{exp}/{run}/artifacts/x.txt"
            assert client.get(path).status_code == 404, (caller, path)
            assert client.put(path, content=b"elsewhere").status_code == 404, (caller, path)
    assert not (root / "workspaces" / "team-b" / exp).exists()
    # A client cannot choose a location under the workspaces' prefix (nor any local path).
    for chosen in ("mlflow-artifacts:/workspaces/team-b/x", "/tmp/x", "file:///tmp/x"):
        refused = alice.post(f"{A}/experiments/create", json={"name": f"chosen-{len(chosen)}",
                                                              "artifact_location": chosen})
        assert refused.status_code == 400, refused.text
    # 'default' keeps today's layout: nothing moves.
    admin = _in(c["admin"], None)
    default_exp = _ok(admin.post(f"{A}/experiments/create", json={"name": "in-default"}))["experiment_id"]
    shown = _ok(admin.get(f"{A}/experiments/get", params={"experiment_id": default_exp}))["experiment"]
    assert shown["artifact_location"] == f"mlflow-artifacts:/{default_exp}"
