"""Authorization through the real app: owners, grants, hidden-equals-missing, scopes, audit, permission APIs."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"


@pytest.fixture
def world(app_factory):
    """An app with an admin client and token-authenticated clients for alice, bob and a read-only bob."""
    app = app_factory()
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        clients = {"admin": admin}
        for name in ("alice", "bob"):
            made = admin.post(f"{A}/users/create", json={"username": name, "password": "Unguessable-Pw-9c1e77aa31"})
            assert made.status_code == 200, made.text
            for read_only in (False, True):
                issued = admin.post(f"{A}/users/tokens/create", json={
                    "name": f"t-{read_only}", "expires_in_days": 1, "username": name, "read_only": read_only})
                assert issued.status_code == 200, issued.text
                client = TestClient(app, base_url="http://127.0.0.1:5000")
                client.headers["Authorization"] = f"Bearer {issued.json()['token']}"
                clients[name + ("-ro" if read_only else "")] = client
        yield app, clients


def _experiment(client, name: str) -> str:
    response = client.post(f"{A}/experiments/create", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def _run(client, experiment_id: str) -> str:
    response = client.post(f"{A}/runs/create", json={"experiment_id": experiment_id})
    assert response.status_code == 200, response.text
    return response.json()["run"]["info"]["run_id"]


def test_creator_manages_and_others_see_nothing(world):
    _, c = world
    exp = _experiment(c["alice"], "alice-private")
    run = _run(c["alice"], exp)
    assert c["alice"].get(f"{A}/experiments/get", params={"experiment_id": exp}).status_code == 200
    assert c["alice"].post(f"{A}/runs/log-metric", json={"run_id": run, "key": "m", "value": 1,
                                                          "timestamp": 1}).status_code == 200
    # bob cannot tell alice's experiment and run from ones that do not exist.
    hidden = c["bob"].get(f"{A}/experiments/get", params={"experiment_id": exp})
    missing = c["bob"].get(f"{A}/experiments/get", params={"experiment_id": "987654"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    hidden_run = c["bob"].get(f"{A}/runs/get", params={"run_id": run})
    missing_run = c["bob"].get(f"{A}/runs/get", params={"run_id": "0" * 32})
    assert hidden_run.status_code == missing_run.status_code == 404
    assert hidden_run.json() == missing_run.json()
    # Searches filter inside the query: nothing of alice's shows up for bob.
    found = c["bob"].post(f"{A}/runs/search", json={"experiment_ids": [exp]}).json()
    assert found.get("runs", []) == []
    names = [e["name"] for e in c["bob"].post(f"{A}/experiments/search", json={}).json().get("experiments", [])]
    assert "alice-private" not in names
    # bob cannot write into alice's experiment through the artifact proxy either.
    put = c["bob"].put(f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/x.txt", content=b"evil")
    assert put.status_code == 404


def test_grant_read_lets_read_but_not_write(world):
    _, c = world
    exp = _experiment(c["alice"], "shared-with-bob")
    run = _run(c["alice"], exp)
    granted = c["alice"].post(f"{A}/experiments/permissions/create",
                              json={"experiment_id": exp, "username": "bob", "permission": "READ"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["experiment_permission"]["permission"] == "READ"
    assert c["bob"].get(f"{A}/runs/get", params={"run_id": run}).status_code == 200
    runs = c["bob"].post(f"{A}/runs/search", json={"experiment_ids": [exp]}).json()["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run]
    write = c["bob"].post(f"{A}/runs/log-metric", json={"run_id": run, "key": "m", "value": 1, "timestamp": 1})
    assert write.status_code == 403
    assert write.json()["error_code"] == "PERMISSION_DENIED"
    # READ does not let bob grant himself more.
    escalate = c["bob"].post(f"{A}/experiments/permissions/update",
                             json={"experiment_id": exp, "username": "bob", "permission": "MANAGE"})
    assert escalate.status_code == 403
    # Upgrading bob to EDIT takes effect on the next request.
    c["alice"].patch(f"{A}/experiments/permissions/update",
                     json={"experiment_id": exp, "username": "bob", "permission": "EDIT"})
    assert c["bob"].post(f"{A}/runs/log-metric", json={"run_id": run, "key": "m", "value": 1,
                                                        "timestamp": 1}).status_code == 200
    # A read-only token of bob still cannot write.
    assert c["bob-ro"].post(f"{A}/runs/log-metric", json={"run_id": run, "key": "m", "value": 2,
                                                           "timestamp": 2}).status_code == 403
    revoked = c["alice"].request("DELETE", f"{A}/experiments/permissions/delete",
                                 json={"experiment_id": exp, "username": "bob"})
    assert revoked.status_code == 200
    assert c["bob"].get(f"{A}/runs/get", params={"run_id": run}).status_code == 404


def test_mlflow3_permission_api_and_effective_permission(world):
    _, c = world
    c["alice"].post(f"{A}/registered-models/create", json={"name": "alice-model"})
    grant = c["alice"].post("/api/3.0/mlflow/users/permissions/grant", json={
        "username": "bob", "resource_type": "registered_model", "resource_id": "alice-model",
        "permission": "EDIT"})
    assert grant.status_code == 200, grant.text
    effective = c["admin"].get("/api/3.0/mlflow/users/permissions/get", params={
        "username": "bob", "resource_type": "registered_model", "resource_id": "alice-model"}).json()
    assert effective == {"allowed": True, "permission": "EDIT"}
    listed = c["bob"].get("/api/3.0/mlflow/users/permissions/list", params={"username": "bob"}).json()
    assert [(p["resource_type"], p["resource_pattern"], p["permission"]) for p in listed["permissions"]] == [
        ("registered_model", "alice-model", "EDIT")]
    # bob (EDIT) may not grant on alice's model; an unknown resource type is a clear 400.
    refused = c["bob"].post("/api/3.0/mlflow/users/permissions/grant", json={
        "username": "bob", "resource_type": "registered_model", "resource_id": "alice-model",
        "permission": "MANAGE"})
    assert refused.status_code == 403
    bad = c["alice"].post("/api/3.0/mlflow/users/permissions/grant", json={
        "username": "bob", "resource_type": "workspace", "resource_id": "x", "permission": "READ"})
    assert bad.status_code == 400


def test_denials_are_audited_with_their_rule(world):
    app, c = world
    exp = _experiment(c["alice"], "audited")
    assert c["bob"].get(f"{A}/experiments/get", params={"experiment_id": exp}).status_code == 404
    records = app.state.identity.store.audit_records()
    denials = [r for r in records if r["action"] == "authorize" and r["outcome"] == "denied"]
    assert denials, records
    last = denials[-1]
    assert last["actor"] == "bob"  # spelled as sign-ins spell it
    assert last["target"] == "experiments.get"
    assert "rule:" in last["reason"]


def test_one_actor_spelling_for_sign_ins_decisions_and_changes(world):
    """bob's sign-in (Basic), bob's denial and alice's grant change all name their actor bare, so an actor
    filter in either spelling finds the same records."""
    from gateway.routes.admin_store import audit_records

    app, c = world
    exp = _experiment(c["alice"], "one-spelling")
    assert c["bob"].get(f"{A}/experiments/get", params={"experiment_id": exp}).status_code == 404
    granted = c["alice"].post(f"{A}/experiments/permissions/create", json={
        "experiment_id": exp, "username": "bob", "permission": "READ"})
    assert granted.status_code == 200, granted.text
    records = app.state.identity.store.audit_records()
    actors = {r["actor"] for r in records if r["actor"]}
    assert not [a for a in actors if a.startswith(("user:", "service:"))], actors
    engine = app.state.identity.store.engine
    with engine.connect() as conn:
        bare = audit_records(conn, actor="bob", limit=1000)
        kinded = audit_records(conn, actor="user:bob", limit=1000)
    assert bare == kinded
    assert {"authorize"} <= {r["action"] for r in bare}


def test_duplicate_and_control_character_keys_cannot_split_the_check_from_the_write(world):
    _, c = world
    mine = _run(c["bob"], _experiment(c["bob"], "bobs"))
    theirs = _run(c["alice"], _experiment(c["alice"], "alices"))
    raw = ('{"run_id": "' + mine + '", "run_id\\u0000": "' + theirs + '", "key": "k", "value": "v"}').encode()
    response = c["bob"].post(f"{A}/runs/log-parameter", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    duplicate = ('{"run_id": "' + mine + '", "run_id": "' + theirs + '", "key": "k", "value": "v"}').encode()
    response = c["bob"].post(f"{A}/runs/log-parameter", content=duplicate,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    params = c["alice"].get(f"{A}/runs/get", params={"run_id": theirs}).json()["run"]["data"].get("params", [])
    assert params == []


def test_renaming_an_experiment_out_of_a_name_pattern_grant_ends_access_at_once(app_factory, tmp_path):
    # Name patterns are matched against the experiment's current name, which the authorizer caches briefly:
    # a rename through this server must count on the very next request, in both directions.
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\naccess:\n  default_permission: NO_PERMISSIONS\n  grants:\n"
                      '    - {principal: "user:bob", resource: "experiment-name:team-*", permission: READ}\n')
    app = app_factory(policy_file=str(policy))
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin, \
            TestClient(app, base_url="http://127.0.0.1:5000") as bob:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        assert admin.post(f"{A}/users/create", json={"username": "bob", "password": "Unguessable-Pw-9c1e77aa31"}
                          ).status_code == 200
        issued = admin.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1, "username": "bob"})
        bob.headers["Authorization"] = f"Bearer {issued.json()['token']}"
        exp = _experiment(admin, "team-rename")
        run = _run(admin, exp)
        assert bob.get(f"{A}/runs/get", params={"run_id": run}).status_code == 200
        assert bob.get(f"{A}/experiments/get", params={"experiment_id": exp}).status_code == 200
        renamed = admin.post(f"{A}/experiments/update", json={"experiment_id": exp, "new_name": "private-rename"})
        assert renamed.status_code == 200, renamed.text
        assert bob.get(f"{A}/runs/get", params={"run_id": run}).status_code == 404
        assert bob.get(f"{A}/experiments/get", params={"experiment_id": exp}).status_code == 404
        back = admin.post(f"{A}/experiments/update", json={"experiment_id": exp, "new_name": "team-again"})
        assert back.status_code == 200, back.text
        assert bob.get(f"{A}/runs/get", params={"run_id": run}).json()["run"]["info"]["experiment_id"] == exp


def test_decision_memo_is_per_compiled_policy_and_per_key():
    from gateway.authz import DecisionMemo
    from policies.decide import compile_policy
    from policies.file.access import AccessConfig
    from policies.model import Decision, Grant

    memo, calls = DecisionMemo(max_entries=2), []

    def compute(allowed: bool):
        def run():
            calls.append(allowed)
            return Decision(allowed, "r", "rule")
        return run

    first, second = compile_policy(AccessConfig()), compile_policy(AccessConfig())  # two compiled policies
    assert memo.decide(first, ("bob", "runs.get", ((0, "exp-1"),)), compute(True), 0).allowed
    assert memo.decide(first, ("bob", "runs.get", ((0, "exp-1"),)), compute(False), 0).allowed  # memoised
    # Another check position naming the same resource is another question.
    assert not memo.decide(first, ("bob", "runs.get", ((1, "exp-1"),)), compute(False), 0).allowed
    # A new compiled policy (a grant changed) forgets every earlier answer.
    assert not memo.decide(second, ("bob", "runs.get", ((0, "exp-1"),)), compute(False), 0).allowed
    assert calls == [True, False, False]
    # An answer holds until the policy's next grant expiry, not after it.
    timed = compile_policy(AccessConfig(), [Grant.from_api(1, "user:bob", "experiment:1", "READ", expires_at=100)])
    assert memo.decide(timed, ("bob",), compute(True), 50).allowed
    assert memo.decide(timed, ("bob",), compute(False), 99).allowed
    assert not memo.decide(timed, ("bob",), compute(False), 100).allowed
    assert calls == [True, False, False, True, False]


def test_a_non_admin_registers_prompt_versions_and_the_placeholder_source_reads_nothing(world):
    _, c = world
    prompt_tag = {"key": "mlflow.prompt.is_prompt", "value": "true"}
    made = c["alice"].post(f"{A}/registered-models/create", json={"name": "alice-prompt", "tags": [prompt_tag]})
    assert made.status_code == 200, made.text
    version = c["alice"].post(f"{A}/model-versions/create", json={
        "name": "alice-prompt", "source": "dummy-source",
        "tags": [prompt_tag, {"key": "mlflow.prompt.text", "value": "Hello {{name}}"}]})
    assert version.status_code == 200, version.text
    assert version.json()["model_version"]["version"] == "1"
    # The placeholder is only a prompt's: as a model's source it is refused, and no version is made.
    assert c["alice"].post(f"{A}/registered-models/create", json={"name": "alice-model"}).status_code == 200
    refused = c["alice"].post(f"{A}/model-versions/create", json={"name": "alice-model", "source": "dummy-source"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    versions = c["alice"].get(f"{A}/model-versions/search", params={"filter": "name = 'alice-model'"}).json()
    assert versions.get("model_versions", []) == []
    # Someone without a grant on the prompt still cannot add to it.
    denied = c["bob"].post(f"{A}/model-versions/create", json={
        "name": "alice-prompt", "source": "dummy-source", "tags": [prompt_tag]})
    assert denied.status_code == 404, denied.text
