"""Advisory class: permission bypass through search endpoints, the artifact proxy and model versions.

alice owns an experiment, a run with artifacts and a registered model version; bob is a non-admin with no
grants. Every way MLflow's published bypasses reached another user's data is tried as bob: he sees
nothing, can change nothing, and cannot launder alice's run into a model version he owns.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.conftest import A, R, Unchanged, make_user

# The server follows MLGATE_TEST_BACKEND: CI runs this module again on PostgreSQL.
pytestmark = pytest.mark.backend_switch

SECRET_BYTES = b"alice-private-weights"


@pytest.fixture(scope="module")
def world(server):
    """alice's experiment, run, artifact and model version; bob's client and his own empty model."""
    alice = httpx.Client(base_url=server.url, headers=make_user(server, "alice-bp").headers, timeout=30)
    bob = httpx.Client(base_url=server.url, headers=make_user(server, "bob-bp").headers, timeout=30)
    exp = alice.post(f"{A}/experiments/create", json={"name": "alice-secret-exp"}).json()["experiment_id"]
    run = alice.post(f"{A}/runs/create", json={"experiment_id": exp, "run_name": "alice-run"}).json()
    run = run["run"]["info"]["run_id"]
    assert alice.post(f"{A}/runs/log-metric", json={"run_id": run, "key": "acc", "value": 0.9,
                                                     "timestamp": 1}).status_code == 200
    assert alice.put(f"{R}/artifacts/{exp}/{run}/artifacts/model/model.pkl",
                     content=SECRET_BYTES).status_code == 200
    assert alice.post(f"{A}/registered-models/create", json={"name": "alice-model"}).status_code == 200
    made = alice.post(f"{A}/model-versions/create", json={
        "name": "alice-model", "source": f"mlflow-artifacts:/{exp}/{run}/artifacts/model", "run_id": run})
    assert made.status_code == 200, made.text
    assert bob.post(f"{A}/registered-models/create", json={"name": "bob-model"}).status_code == 200
    yield alice, bob, exp, run
    alice.close()
    bob.close()


def _hidden(response: httpx.Response) -> None:
    assert response.status_code in (403, 404), (response.request.url, response.status_code, response.text)
    assert SECRET_BYTES not in response.content
    assert b"alice" not in response.content


def test_permission_bypass_search_endpoints(server, world):
    _, bob, exp, run = world
    unchanged = Unchanged(server)
    searches = [
        bob.post(f"{A}/runs/search", json={"experiment_ids": [exp]}),
        bob.post(f"{A}/runs/search", json={"experiment_ids": [exp], "filter": f"attributes.run_id = '{run}'"}),
        bob.post(f"{A}/runs/search", json={"experiment_ids": [exp, "0"], "run_view_type": "ALL"}),
        bob.get(f"{A}/runs/search", params={"experiment_ids": exp}),
        bob.post("/ajax-api/2.0/mlflow/runs/search", json={"experiment_ids": [exp]}),
        bob.post(f"{A}/experiments/search", json={"filter": "name LIKE 'alice%'", "view_type": "ALL"}),
        bob.get(f"{A}/registered-models/search", params={"filter": "name LIKE 'alice%'"}),
        bob.get(f"{A}/model-versions/search", params={"filter": "name = 'alice-model'"}),
        bob.get(f"{A}/model-versions/search", params={"filter": f"run_id = '{run}'"}),
        bob.post(f"{A}/logged-models/search", json={"experiment_ids": [exp]}),
        bob.post("/api/3.0/mlflow/traces/search", json={"locations": [
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]}),
    ]
    for response in searches:
        if response.status_code == 200:
            body = response.json()
            assert all(not value for key, value in body.items() if key != "next_page_token"), body
            assert b"alice" not in response.content
        else:
            _hidden(response)
    for response in (bob.get(f"{A}/runs/get", params={"run_id": run}),
                     bob.get(f"{A}/experiments/get", params={"experiment_id": exp}),
                     bob.get(f"{A}/experiments/get-by-name", params={"experiment_name": "alice-secret-exp"}),
                     bob.get(f"{A}/metrics/get-history", params={"run_id": run, "metric_key": "acc"}),
                     bob.get(f"{A}/registered-models/get", params={"name": "alice-model"}),
                     bob.get(f"/runs/{run}"), bob.get(f"/experiments/{exp}")):
        _hidden(response)
    # The web UI's experiment list is filtered the same way.
    listing = bob.get("/")
    assert listing.status_code == 200
    assert "alice-secret-exp" not in listing.text
    unchanged.check()


def test_permission_bypass_artifact_proxy(server, world):
    _, bob, exp, run = world
    unchanged = Unchanged(server)
    target = f"{exp}/{run}/artifacts/model/model.pkl"
    for response in (bob.get(f"{R}/artifacts/{target}"),
                     bob.get(f"/ajax-api/2.0/mlflow-artifacts/artifacts/{target}"),
                     bob.get(f"{R}/artifacts", params={"path": f"{exp}/{run}/artifacts/model"}),
                     bob.get(f"{R}/artifacts", params={"path": f"{exp}/{run}/artifacts"}),
                     bob.get("/get-artifact", params={"run_id": run, "path": "model/model.pkl"}),
                     bob.get("/get-artifact", params={"run_uuid": run, "path": "model/model.pkl"}),
                     bob.get(f"{A}/artifacts/list", params={"run_id": run}),
                     bob.put(f"{R}/artifacts/{target}", content=b"overwritten"),
                     bob.put(f"{R}/artifacts/{exp}/{run}/artifacts/new.txt", content=b"planted"),
                     bob.delete(f"{R}/artifacts/{target}"),
                     bob.post(f"{R}/mpu/create/{target}", json={"path": target, "num_parts": 1})):
        _hidden(response)
    unchanged.check()


def test_permission_bypass_model_versions(server, world):
    _, bob, exp, run = world
    unchanged = Unchanged(server)
    for response in (bob.get(f"{A}/model-versions/get", params={"name": "alice-model", "version": "1"}),
                     bob.get(f"{A}/model-versions/get-download-uri", params={"name": "alice-model", "version": "1"}),
                     bob.get("/model-versions/get-artifact", params={"name": "alice-model", "version": "1",
                                                                     "path": "model.pkl"}),
                     bob.patch(f"{A}/model-versions/update", json={"name": "alice-model", "version": "1",
                                                                   "description": "pwned"}),
                     bob.post(f"{A}/model-versions/create", json={"name": "alice-model",
                                                                  "source": "mlflow-artifacts:/0/x/artifacts"})):
        _hidden(response)
    # Laundering: a version of bob's own model pointing at alice's run, by run_id and by source.
    for body in ({"source": f"mlflow-artifacts:/{exp}/{run}/artifacts/model", "run_id": run},
                 {"source": f"mlflow-artifacts:/{exp}/{run}/artifacts/model"},
                 {"source": f"runs:/{run}/model"},
                 {"source": "models:/alice-model/1"},
                 {"source": "mlflow-artifacts:/0/x/artifacts", "run_id": run}):
        response = bob.post(f"{A}/model-versions/create", json={"name": "bob-model", **body})
        # Hidden equals missing: the answer is the one for a run that does not exist.
        assert response.status_code == 404, (body, response.status_code, response.text)
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    unchanged.check()
    # Control: bob may register a version from a run of his own, so the refusals above were about alice's run.
    own_exp = bob.post(f"{A}/experiments/create", json={"name": "bob-own-exp"}).json()["experiment_id"]
    own_run = bob.post(f"{A}/runs/create", json={"experiment_id": own_exp}).json()["run"]["info"]["run_id"]
    own = bob.post(f"{A}/model-versions/create", json={
        "name": "bob-model", "source": f"mlflow-artifacts:/{own_exp}/{own_run}/artifacts/model", "run_id": own_run})
    assert own.status_code == 200, own.text
