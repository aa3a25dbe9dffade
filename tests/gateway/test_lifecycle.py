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
