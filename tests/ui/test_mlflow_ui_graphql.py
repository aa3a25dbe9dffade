"""POST /graphql: the queries MLflow's web UI sends, under the caller's visibility, and bounded.

The queries are MLflow 3.17's own (its UI bundle's text), so a field renamed here fails. A hidden experiment,
its runs and their metric histories answer exactly like missing ones; a bad or abusive request is a 400.
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_PASSWORD
from tests.ui.conftest import BASE, READER_PASSWORD, new_run, ok, sign_in

A = "/api/2.0/mlflow"
GET_EXPERIMENT = """
query MlflowGetExperimentQuery($input: MlflowGetExperimentInput!) @component(name: "MLflow.ExperimentRunTracking") {
  mlflowGetExperiment(input: $input) {
    apiError { code message }
    experiment { artifactLocation creationTime effectiveTraceArchivalRetention experimentId lastUpdateTime
                 lifecycleStage name tags { key value } }
  }
}"""
RUN_FIELDS = """
  info { runName status runUuid experimentId artifactUri endTime lifecycleStage startTime userId }
  experiment { experimentId name tags { key value } artifactLocation lifecycleStage lastUpdateTime }
  modelVersions { status version name source }
  data { metrics { key value step timestamp } params { key value } tags { key value } }
  inputs { datasetInputs { dataset { digest name profile schema source sourceType } tags { key value } }
           modelInputs { modelId } }
  outputs { modelOutputs { modelId step } }
"""
GET_RUN = ("query GetRun($data: MlflowGetRunInput!) @component(name: \"MLflow.ExperimentRunTracking\") {"
           " mlflowGetRun(input: $data) { apiError { helpUrl code message } run {" + RUN_FIELDS + "} } }")
SEARCH_RUNS = ("query SearchRuns($data: MlflowSearchRunsInput!) { mlflowSearchRuns(input: $data) {"
               " apiError { helpUrl code message } runs {" + RUN_FIELDS + "} } }")
HISTORY = """
query GetMetricHistoryBulkInterval($data: MlflowGetMetricHistoryBulkIntervalInput!)
@component(name: "MLflow.ExperimentRunTracking") {
  mlflowGetMetricHistoryBulkInterval(input: $data) {
    __typename
    metrics { timestamp step runId key value }
    apiError { code message }
  }
}"""
MISSING = {"code": "RESOURCE_DOES_NOT_EXIST", "message": "The requested resource does not exist."}


def _gql(client, query: str, variables: dict, **headers) -> dict:
    answer = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def world(ui):
    api = ui["api"]
    metrics = [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1_764_000_000_000 + s, "step": s}
               for s in range(30)]
    shared_run = new_run(api, ui["shared"], "visible-run", params=[{"key": "lr", "value": "0.1"}], metrics=metrics)
    hidden_run = new_run(api, ui["hidden"], "hidden-run", metrics=metrics)
    for name in ("shared-model", "hidden-model"):
        ok(api.post(f"{A}/registered-models/create", json={"name": name}))
        ok(api.post(f"{A}/model-versions/create", json={"name": name, "source": f"runs:/{shared_run}/model",
                                                         "run_id": shared_run}))
    ok(api.post(f"{A}/registered-models/permissions/create",
                json={"name": "shared-model", "username": "reader", "permission": "READ"}))
    reader = sign_in(ui["app"], "reader", READER_PASSWORD)
    reader.headers["X-CSRF-Token"] = reader.get("/ajax-api/2.0/mlflow/users/current").json()["csrf_token"]
    return {**ui, "shared_run": shared_run, "hidden_run": hidden_run, "reader_client": reader}


def test_the_ui_queries_answer_in_mlflows_shape(world):
    reader, run = world["reader_client"], world["shared_run"]
    experiment = _gql(reader, GET_EXPERIMENT, {"input": {"experimentId": world["shared"]}})["mlflowGetExperiment"]
    assert experiment["apiError"] is None
    assert experiment["experiment"]["name"] == "shared-exp"
    assert isinstance(experiment["experiment"]["creationTime"], str)  # LongString: 64-bit safe in JavaScript
    got = _gql(reader, GET_RUN, {"data": {"runId": run}})["mlflowGetRun"]["run"]
    assert got["info"]["runUuid"] == run
    assert got["info"]["status"] == "RUNNING"
    assert got["experiment"]["experimentId"] == world["shared"]
    assert got["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert got["data"]["metrics"][0]["step"] == "29"
    # Versions of models the reader may see only: the hidden model's version of this run is not listed.
    assert [(v["name"], v["version"]) for v in got["modelVersions"]] == [("shared-model", "1")]
    history = _gql(reader, HISTORY, {"data": {"runIds": [run], "metricKey": "loss", "maxResults": 5}})
    points = history["mlflowGetMetricHistoryBulkInterval"]["metrics"]
    assert points[0] == {"timestamp": "1764000000000", "step": "0", "runId": run, "key": "loss", "value": 1.0}
    assert points[-1]["step"] == "29"
    assert len(points) <= 6


def test_hidden_experiments_runs_and_histories_answer_like_missing_ones(world):
    reader, hidden, hidden_run = world["reader_client"], world["hidden"], world["hidden_run"]
    for experiment_id in (hidden, "987654"):
        answer = _gql(reader, GET_EXPERIMENT, {"input": {"experimentId": experiment_id}})["mlflowGetExperiment"]
        assert answer == {"apiError": MISSING, "experiment": None}
    for run_id in (hidden_run, "0" * 32):
        answer = _gql(reader, GET_RUN, {"data": {"runId": run_id}})["mlflowGetRun"]
        assert answer == {"apiError": {**MISSING, "helpUrl": None}, "run": None}
        history = _gql(reader, HISTORY, {"data": {"runIds": [world["shared_run"], run_id], "metricKey": "loss"}})
        assert history["mlflowGetMetricHistoryBulkInterval"]["apiError"] == MISSING
        assert history["mlflowGetMetricHistoryBulkInterval"]["metrics"] is None
    # A search over both experiments finds the visible run only; naming the hidden run finds nothing.
    found = _gql(reader, SEARCH_RUNS, {"data": {"experimentIds": [world["shared"], hidden]}})["mlflowSearchRuns"]
    assert [r["info"]["runUuid"] for r in found["runs"]] == [world["shared_run"]]
    found = _gql(reader, SEARCH_RUNS, {"data": {"experimentIds": [hidden],
                                                "filter": f"attributes.run_id = '{hidden_run}'"}})
    assert found["mlflowSearchRuns"]["runs"] == []
    # The administrator sees both.
    admin = sign_in(world["app"], "admin", TEST_ADMIN_PASSWORD)
    admin.headers["X-CSRF-Token"] = admin.get("/ajax-api/2.0/mlflow/users/current").json()["csrf_token"]
    assert _gql(admin, GET_RUN, {"data": {"runId": hidden_run}})["mlflowGetRun"]["run"]["info"]["runName"] \
        == "hidden-run"


def test_the_session_needs_its_csrf_token_and_the_same_origin(world):
    reader = world["reader_client"]
    body = {"query": GET_EXPERIMENT, "variables": {"input": {"experimentId": world["shared"]}}}
    token = reader.headers.pop("X-CSRF-Token")
    assert reader.post("/graphql", json=body).status_code == 403
    assert reader.post("/graphql", json=body, headers={"X-CSRF-Token": token}).status_code == 200
    elsewhere = reader.post("/graphql", json=body, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    anonymous = TestClient(world["app"], base_url=BASE)
    assert anonymous.post("/graphql", json=body).status_code == 401


def _aliases(n: int, experiment_id: str = "1") -> str:
    # Aliases below the root: one root field, selecting its apiError n times under n names.
    return (f'{{ mlflowGetExperiment(input: {{experimentId: "{experiment_id}"}}) {{ '
            + " ".join(f"a{i}: apiError {{ code }}" for i in range(n)) + " } }")


def _deep(depth: int) -> str:
    fields = ["__schema", "types", "fields", "type"] + ["ofType"] * (depth - 5)
    return "{ " + " { ".join(fields) + " { name" + " }" * (len(fields) + 1)


BAD_REQUESTS = [
    (json.dumps([{"query": "{ __typename }"}] * 2), "Batched GraphQL requests are not supported"),
    ("not json", "must be a JSON object"),
    (json.dumps({"query": "{ mlflowGetRun(input: {runId: \"x\"}) { nope } }"}), "Cannot query field 'nope'"),
    (json.dumps({"query": "{ mlflowGetRun("}), "Invalid GraphQL query: Syntax Error"),
    (json.dumps({"query": _aliases(11)}), "at most 10 aliases"),
    (json.dumps({"query": "{ " + " ".join("__typename" for _ in range(11)) + " }"}), "at most 10 root fields"),
    (json.dumps({"query": "{" + " a" * 6000 + " }"}), "Document contains more than 5000 tokens"),
    (json.dumps({"query": "{" + " a" * 30000 + " }"}), "may be at most 20000 characters"),
    (json.dumps({"query": "query Q { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}),
     "Cannot spread fragment 'A' within itself"),
    (json.dumps({"query": _deep(11)}), "at most 10 fields deep"),
    (json.dumps({"query": GET_RUN, "variables": {"data": {"runId": 5}}}), "String cannot represent"),
    (json.dumps({"query": GET_RUN, "variables": "x"}), "'variables' must be a JSON object"),
    (json.dumps({"query": ""}), "Missing value for required parameter 'query'"),
]


def test_bad_and_abusive_requests_are_400_before_anything_runs(world):
    # One world for every case (building it signs users in, which hashes passwords: slow).
    for body, says in BAD_REQUESTS:
        answer = world["reader_client"].post("/graphql", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, (says, answer.text)
        payload = answer.json()
        assert payload["error_code"] == "INVALID_PARAMETER_VALUE"
        assert payload["data"] is None
        assert says in payload["message"], (says, payload["message"])


def test_ten_aliases_and_ten_levels_are_still_allowed(world):
    answer = world["reader_client"].post("/graphql", json={"query": _aliases(10, world["hidden"])})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["mlflowGetExperiment"]["a9"] == {"code": "RESOURCE_DOES_NOT_EXIST"}
    answer = world["reader_client"].post("/graphql", json={"query": _deep(10)})
    assert answer.status_code == 200, answer.text
