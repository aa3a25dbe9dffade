"""Authorization over time: visibility fails closed, and grants, caches and scopes follow resources through
create, rename, delete and re-create (issue #18, the resource half)."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tracking.api.body import _STATE_KEY as ARGS_KEY
from tracking.api.body import Args, request_args

A = "/api/2.0/mlflow"
B = "/api/3.0/mlflow"
BASE = "http://127.0.0.1:5000"
PASSWORD = "Unguessable-Pw-9c1e77aa31"


@pytest.fixture
def world(app_factory):
    """An app with an admin client and token clients for alice, bob and carol (no grants)."""
    app = app_factory()
    with TestClient(app, base_url=BASE) as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        clients = {"admin": admin}
        for name in ("alice", "bob", "carol"):
            made = admin.post(f"{A}/users/create", json={"username": name, "password": PASSWORD})
            assert made.status_code == 200, made.text
            issued = admin.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1, "username": name})
            assert issued.status_code == 200, issued.text
            bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
            clients[name] = TestClient(app, base_url=BASE, headers=bearer)
        yield app, clients


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def missing(response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- Finding 5: no scope means nothing visible -------------------------------------------------------------------

SEARCHES = [
    ("post", f"{A}/experiments/search", {}),
    ("get", f"{A}/experiments/search", {}),
    ("post", f"{A}/runs/search", {"experiment_ids": ["0", "1"]}),
    ("post", f"{A}/registered-models/search", {}),
    ("post", f"{A}/model-versions/search", {}),
    ("post", f"{A}/logged-models/search", {"experiment_ids": ["0", "1"]}),
    ("post", f"{B}/traces/search", {"experiment_ids": ["0", "1"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), SEARCHES, ids=[f"{m} {p}" for m, p, _ in SEARCHES])
def test_a_search_reached_with_no_scope_returns_nothing(app_factory, method, path, body):
    app = app_factory()
    with TestClient(app, base_url=BASE, headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as admin:
        exp = ok(admin.post(f"{A}/experiments/create", json={"name": "visible-to-admin"}))["experiment_id"]
        run = ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp}))["run"]["info"]["run_id"]
        ok(admin.post(f"{A}/registered-models/create", json={"name": "m"}))
        ok(admin.post(f"{A}/model-versions/create", json={"name": "m", "source": f"runs:/{run}/model",
                                                          "run_id": run}))
        ok(admin.post(f"{A}/logged-models", json={"experiment_id": exp}))
        ok(admin.post(f"{B}/traces", json={"trace": {"trace_info": _trace_info("tr-" + "a" * 32, exp)}}))
        body = {k: (["0", exp] if k == "experiment_ids" else v) for k, v in body.items()}
        kwargs = {"params": body} if method == "get" else {"json": body}
        everything = ok(getattr(admin, method)(path, **kwargs))
        assert any(everything.values()), everything  # the administrator's own scope shows it all
        # The same request through an app whose authorizer set no scope (a misclassified route) sees nothing.
        app.dependency_overrides[app.state.authorizer] = lambda: None
        nothing = ok(getattr(admin, method)(path, **kwargs))
        assert not any(v for k, v in nothing.items() if k != "next_page_token"), nothing


def _trace_info(trace_id: str, experiment_id: str) -> dict:
    return {"trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                                      "mlflow_experiment": {"experiment_id": experiment_id}},
            "request_time": "2026-01-01T00:00:00Z", "execution_duration": "0.5s", "state": "OK"}


# --- Finding 3: trace ids are chosen by clients and reused -------------------------------------------------------

def _start_trace(client, trace_id: str, experiment_id: str, **tags):
    info = {**_trace_info(trace_id, experiment_id), "tags": tags}
    return client.post(f"{B}/traces", json={"trace": {"trace_info": info}})


def test_a_deleted_trace_id_reused_in_another_experiment_belongs_to_that_experiment_only(world):
    _, c = world
    mallory, victor = c["alice"], c["bob"]
    trace_id = "tr-" + "5" * 32
    mine = ok(mallory.post(f"{A}/experiments/create", json={"name": "mallory-exp"}))["experiment_id"]
    ok(_start_trace(mallory, trace_id, mine))
    ok(mallory.get(f"{B}/traces/{trace_id}"))  # read once: the authorizer looked the owner up
    assert ok(mallory.post(f"{A}/traces/delete-traces", json={"experiment_id": mine,
                                                              "request_ids": [trace_id]}))["traces_deleted"] == 1
    # victor's application exports a trace with the same (client-chosen) id into his experiment.
    his = ok(victor.post(f"{A}/experiments/create", json={"name": "victor-exp"}))["experiment_id"]
    ok(_start_trace(victor, trace_id, his, secret="victor-input"))
    # The trace is victor's: mallory cannot read, tag or assess it, victor can.
    missing(mallory.get(f"{B}/traces/{trace_id}"))
    missing(mallory.get(f"{B}/traces/get", params={"trace_id": trace_id}))
    missing(mallory.patch(f"{A}/traces/{trace_id}/tags", json={"key": "k", "value": "v"}))
    missing(mallory.post(f"{B}/traces/{trace_id}/assessments", json={"assessment": {
        "trace_id": trace_id, "assessment_name": "a", "source": {"source_type": "HUMAN", "source_id": "m"},
        "feedback": {"value": True}}}))
    batch = mallory.get(f"{B}/traces/batchGet", params={"trace_ids": [trace_id]})
    assert "victor-input" not in batch.text
    assert batch.status_code == 404 or batch.json().get("traces") == []
    seen = ok(victor.get(f"{B}/traces/{trace_id}"))["trace"]["trace_info"]
    assert seen["tags"]["secret"] == "victor-input"
    assert seen["trace_location"]["mlflow_experiment"]["experiment_id"] == his


def test_batch_get_applies_the_callers_scope_in_its_own_query(world):
    app, c = world
    alice, bob = c["alice"], c["bob"]
    hers = ok(alice.post(f"{A}/experiments/create", json={"name": "alice-traces"}))["experiment_id"]
    his = ok(bob.post(f"{A}/experiments/create", json={"name": "bob-traces"}))["experiment_id"]
    ok(_start_trace(alice, "tr-" + "a" * 32, hers))
    ok(_start_trace(bob, "tr-" + "b" * 32, his))
    both = {"trace_ids": ["tr-" + "a" * 32, "tr-" + "b" * 32]}
    assert [t["trace_info"]["trace_id"] for t in ok(c["admin"].get(f"{B}/traces/batchGet", params=both))["traces"]] \
        == ["tr-" + "a" * 32, "tr-" + "b" * 32]
    missing(alice.get(f"{B}/traces/batchGet", params=both))  # the authorizer checks every id
    # The handler filters too, with the caller's scope: were a checked id reused in between (simulated by an
    # authorizer that lets the request through, as a check made just before a delete and re-create would),
    # bob's trace still stays out of alice's answer.
    authorizer = app.state.authorizer

    async def checks_only_the_first_id(request: Request):
        asked = await request_args(request)
        setattr(request.state, ARGS_KEY, Args({"trace_ids": ["tr-" + "a" * 32]}))
        await authorizer(request)
        setattr(request.state, ARGS_KEY, asked)

    app.dependency_overrides[authorizer] = checks_only_the_first_id
    shown = ok(alice.get(f"{B}/traces/batchGet", params=both))["traces"]
    assert [t["trace_info"]["trace_id"] for t in shown] == ["tr-" + "a" * 32]


def test_starting_a_trace_with_a_taken_id_answers_the_same_whether_or_not_the_caller_sees_it(world):
    _, c = world
    alice, bob = c["alice"], c["bob"]
    hidden_id, visible_id = "tr-" + "1" * 32, "tr-" + "2" * 32
    his = ok(bob.post(f"{A}/experiments/create", json={"name": "bob-private"}))["experiment_id"]
    ok(_start_trace(bob, hidden_id, his, owner="bob"))
    hers = ok(alice.post(f"{A}/experiments/create", json={"name": "alice-one"}))["experiment_id"]
    other = ok(alice.post(f"{A}/experiments/create", json={"name": "alice-two"}))["experiment_id"]
    ok(_start_trace(alice, visible_id, other))
    hidden = _start_trace(alice, hidden_id, hers, owner="alice")
    visible = _start_trace(alice, visible_id, hers)
    assert hidden.status_code == visible.status_code == 400
    assert hidden.json() == {k: v.replace(visible_id, hidden_id) for k, v in visible.json().items()}
    assert hidden.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert "experiment" not in hidden.json()["message"].split(";")[0]  # names no experiment, says no "another"
    # bob's trace is untouched.
    assert ok(bob.get(f"{B}/traces/{hidden_id}"))["trace"]["trace_info"]["tags"]["owner"] == "bob"


# --- Finding 1: grants on a registered model follow the model, not its name ---------------------------------------

def _model_names(client) -> list[str]:
    return [m["name"] for m in ok(client.post(f"{A}/registered-models/search", json={})).get("registered_models", [])]


def test_a_renamed_model_keeps_its_grants_and_its_old_name_grants_nothing(world):
    _, c = world
    dana, bob = c["alice"], c["bob"]
    ok(dana.post(f"{A}/registered-models/create", json={"name": "m"}))
    ok(dana.post(f"{A}/registered-models/permissions/create", json={"name": "m", "username": "bob",
                                                                     "permission": "READ"}))
    ok(dana.post(f"{A}/registered-models/rename", json={"name": "m", "new_name": "m2"}))
    # The owner and bob keep their grants on the renamed model; the search shows it under its new name.
    assert ok(dana.get(f"{A}/registered-models/get", params={"name": "m2"}))["registered_model"]["name"] == "m2"
    ok(bob.get(f"{A}/registered-models/get", params={"name": "m2"}))
    assert _model_names(dana) == _model_names(bob) == ["m2"]
    listed = ok(bob.get(f"{B}/users/permissions/list", params={"username": "bob"}))["permissions"]
    assert [(p["resource_type"], p["resource_pattern"]) for p in listed] == [("registered_model", "m2")]
    shown = ok(c["admin"].get("/api/2.0/mlgate/grants/list", params={"resource": "model:m2"}))["grants"]
    assert sorted((g["subject"], g["resource"]) for g in shown) == [("user:alice", "model:m2"),
                                                                    ("user:bob", "model:m2")]
    # A new model that takes the old name is the administrator's alone.
    ok(c["admin"].post(f"{A}/registered-models/create", json={"name": "m"}))
    missing(dana.get(f"{A}/registered-models/get", params={"name": "m"}))
    missing(dana.delete(f"{A}/registered-models/delete", params={"name": "m"}))
    missing(bob.get(f"{A}/registered-models/get", params={"name": "m"}))
    assert _model_names(dana) == ["m2"]


@pytest.mark.parametrize("prompt", [False, True], ids=["model", "prompt"])
def test_a_deleted_model_takes_its_grants_along_and_a_re_created_name_starts_clean(world, prompt):
    _, c = world
    dana, bob, carol = c["alice"], c["bob"], c["carol"]
    tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}] if prompt else []
    ok(dana.post(f"{A}/registered-models/create", json={"name": "m", "tags": tags}))
    ok(dana.post(f"{A}/registered-models/permissions/create", json={"name": "m", "username": "carol",
                                                                     "permission": "EDIT"}))
    ok(dana.delete(f"{A}/registered-models/delete", params={"name": "m"}))
    assert ok(c["admin"].get("/api/2.0/mlgate/grants/list", params={"resource": "model:m"}))["grants"] == []
    ok(bob.post(f"{A}/registered-models/create", json={"name": "m", "tags": tags}))
    for outsider in (dana, carol):
        missing(outsider.get(f"{A}/registered-models/get", params={"name": "m"}))
        missing(outsider.post(f"{A}/registered-models/set-tag", json={"name": "m", "key": "k", "value": "v"}))
        assert _model_names(outsider) == []
    shown = ok(c["admin"].get("/api/2.0/mlgate/grants/list", params={"resource": "model:m"}))["grants"]
    assert [(g["subject"], g["permission"], g["source"]) for g in shown] == [("user:bob", "MANAGE", "owner")]
    ok(bob.delete(f"{A}/registered-models/delete", params={"name": "m"}))


def test_a_grant_on_a_model_that_does_not_exist_is_refused(world):
    _, c = world
    refused = c["admin"].post("/api/2.0/mlgate/grants/put", json={"subject": "user:bob", "resource": "model:later",
                                                                  "permission": "READ"})
    missing(refused)
    missing(c["admin"].post(f"{B}/users/permissions/grant", json={
        "username": "bob", "resource_type": "registered_model", "resource_id": "later", "permission": "READ"}))
    # Created afterwards, the model is its creator's only.
    ok(c["alice"].post(f"{A}/registered-models/create", json={"name": "later"}))
    missing(c["bob"].get(f"{A}/registered-models/get", params={"name": "later"}))


# --- Finding 6: nobody takes a name a grant promised to others ----------------------------------------------------

def test_a_name_promised_by_a_pattern_grant_cannot_be_squatted(world):
    _, c = world
    admin, member, outsider = c["admin"], c["alice"], c["carol"]
    # The README's example: group team-a may log to every experiment named team-a/..., no access.create rules.
    ok(admin.post("/api/2.0/mlgate/groups/create", json={"name": "team-a"}))
    ok(admin.post("/api/2.0/mlgate/groups/add-member", json={"group": "team-a", "username": "alice"}))
    ok(admin.post("/api/2.0/mlgate/grants/put", json={"subject": "group:team-a", "resource": "experiment-name:team-a/*",
                                                      "permission": "EDIT"}))
    ok(admin.post("/api/2.0/mlgate/grants/put", json={"subject": "group:team-a", "resource": "model-name:team-a-*",
                                                      "permission": "EDIT"}))
    squat = outsider.post(f"{A}/experiments/create", json={"name": "team-a/forecast"})
    assert squat.status_code == 403, squat.text
    assert squat.json()["error_code"] == "PERMISSION_DENIED"
    assert "group:team-a" not in squat.json()["message"]  # the refusal names the rule, not who holds it
    assert outsider.post(f"{A}/registered-models/create", json={"name": "team-a-model"}).status_code == 403
    # Renaming one's own experiment or model into the namespace is the same squat.
    mine = ok(outsider.post(f"{A}/experiments/create", json={"name": "carol/forecast"}))["experiment_id"]
    assert outsider.post(f"{A}/experiments/update", json={"experiment_id": mine,
                                                          "new_name": "team-a/forecast"}).status_code == 403
    ok(outsider.post(f"{A}/registered-models/create", json={"name": "carol-model"}))
    assert outsider.post(f"{A}/registered-models/rename", json={"name": "carol-model",
                                                                 "new_name": "team-a-model"}).status_code == 403
    # Names nobody was promised stay free for all; the team creates in its own namespace.
    ok(outsider.post(f"{A}/experiments/create", json={"name": "team-b/forecast"}))
    exp = ok(member.post(f"{A}/experiments/create", json={"name": "team-a/forecast"}))["experiment_id"]
    ok(member.post(f"{A}/registered-models/create", json={"name": "team-a-model"}))
    missing(outsider.get(f"{A}/experiments/get", params={"experiment_id": exp}))


def test_a_read_only_pattern_grant_does_not_let_its_holders_create_there(world):
    _, c = world
    admin = c["admin"]
    ok(admin.post("/api/2.0/mlgate/grants/put", json={"subject": "user:bob", "resource": "experiment-name:shared/*",
                                                      "permission": "READ"}))
    # bob may read what is named shared/..., so nobody but an EDIT holder (here: an administrator) may put it there.
    for who in ("bob", "carol"):
        assert c[who].post(f"{A}/experiments/create", json={"name": "shared/x"}).status_code == 403
    ok(admin.post(f"{A}/experiments/create", json={"name": "shared/x"}))


# --- Lifecycle events reach every process; soft delete and restore keep exactly the resource's grants -----------

def test_a_rename_on_another_process_ends_name_pattern_access_with_the_next_policy_check(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\naccess:\n  grants:\n"
                      '    - {principal: "user:bob", resource: "experiment-name:team-*", permission: READ}\n')
    here, there = app_factory(policy_file=str(policy)), app_factory(policy_file=str(policy))  # one database
    # Names are cached for an hour here: only the rename's policy generation can make this process forget.
    here.state.authorizer.resolver.name_seconds = 3600
    with TestClient(here, base_url=BASE) as admin_here, TestClient(there, base_url=BASE) as admin_there:
        admin_here.headers["Authorization"] = admin_there.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        ok(admin_here.post(f"{A}/users/create", json={"username": "bob", "password": PASSWORD}))
        token = ok(admin_here.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1,
                                                                      "username": "bob"}))["token"]
        bob = TestClient(here, base_url=BASE, headers={"Authorization": f"Bearer {token}"})
        exp = ok(admin_here.post(f"{A}/experiments/create", json={"name": "team-x"}))["experiment_id"]
        ok(bob.get(f"{A}/experiments/get", params={"experiment_id": exp}))  # caches the name here
        ok(admin_there.post(f"{A}/experiments/update", json={"experiment_id": exp, "new_name": "private-x"}))
        here.state.policy_holder.clock = lambda: float("inf")  # the refresh interval has passed (no Redis here)
        missing(bob.get(f"{A}/experiments/get", params={"experiment_id": exp}))


def test_restoring_an_experiment_brings_back_exactly_its_own_grants(world):
    _, c = world
    alice, bob, carol = c["alice"], c["bob"], c["carol"]
    exp = ok(alice.post(f"{A}/experiments/create", json={"name": "restorable"}))["experiment_id"]
    ok(alice.post(f"{A}/experiments/permissions/create", json={"experiment_id": exp, "username": "bob",
                                                                "permission": "READ"}))
    before = ok(c["admin"].get("/api/2.0/mlgate/grants/list", params={"resource": f"experiment:{exp}"}))["grants"]
    ok(alice.post(f"{A}/experiments/delete", json={"experiment_id": exp}))
    # Deleted experiments keep their name and id (MLflow): nobody can create it again meanwhile.
    assert carol.post(f"{A}/experiments/create", json={"name": "restorable"}).status_code == 400
    ok(alice.post(f"{A}/experiments/restore", json={"experiment_id": exp}))
    after = ok(c["admin"].get("/api/2.0/mlgate/grants/list", params={"resource": f"experiment:{exp}"}))["grants"]
    assert after == before
    seen = ok(bob.get(f"{A}/experiments/get", params={"experiment_id": exp}))["experiment"]
    assert seen["lifecycle_stage"] == "active"
    missing(carol.get(f"{A}/experiments/get", params={"experiment_id": exp}))
