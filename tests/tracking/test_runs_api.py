"""Runs REST API on SQLite and PostgreSQL: MLflow's fields, JSON, status codes, error codes, atomicity."""

from __future__ import annotations

import math

import pytest

from tests.tracking.tracking_app import tracking_client

A = "/api/2.0/mlflow"


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path):
    """A TestClient over a fresh tracking app on each database backend."""
    with tracking_client(request.param, tmp_path) as client:
        yield client


def assert_error(resp, status, code, fragment=None):
    """An MLflow-style error body with this status and code."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    if fragment is not None:
        assert fragment in body["message"], body["message"]


def new_experiment(api, name="exp"):
    """Create an experiment; returns its id."""
    resp = api.post(f"{A}/experiments/create", json={"name": name})
    assert resp.status_code == 200, resp.text
    return resp.json()["experiment_id"]


def new_run(api, experiment_id="0", **fields):
    """Create a run; returns the response's run JSON."""
    resp = api.post(f"{A}/runs/create", json={"experiment_id": experiment_id, **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["run"]


def get_run(api, run_id):
    """The run JSON."""
    resp = api.get(f"{A}/runs/get", params={"run_id": run_id})
    assert resp.status_code == 200, resp.text
    return resp.json()["run"]


def post(api, path, body):
    """POST and assert success with MLflow's empty body."""
    resp = api.post(f"{A}/{path}", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def tags_of(run):
    """A run's tags as a dict."""
    return {t["key"]: t["value"] for t in run["data"]["tags"]}


def metrics_of(run):
    """A run's latest metrics as key -> (value, step, timestamp)."""
    return {m["key"]: (m["value"], m["step"], m["timestamp"]) for m in run["data"]["metrics"]}


def history(api, run_id, key, **params):
    """The metric history response."""
    resp = api.get(f"{A}/metrics/get-history", params={"run_id": run_id, "metric_key": key, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- create / get -----------------------------------------------------------------------------

def test_create_run_shape(api):
    eid = new_experiment(api)
    run = new_run(api, eid, user_id="alice", start_time=1234, run_name="first",
                  tags=[{"key": "team", "value": "a"}])
    info = run["info"]
    run_id = info["run_id"]
    assert len(run_id) == 32
    assert info == {
        "run_uuid": run_id, "run_id": run_id, "experiment_id": eid, "run_name": "first", "user_id": "alice",
        "status": "RUNNING", "start_time": 1234, "artifact_uri": f"mlflow-artifacts:/{eid}/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    assert run["data"] == {"metrics": [], "params": [], "tags": [{"key": "mlflow.runName", "value": "first"},
                                                                 {"key": "team", "value": "a"}]}
    assert run["inputs"] == {"dataset_inputs": [], "model_inputs": []}
    assert run["outputs"] == {"model_outputs": []}
    assert get_run(api, run_id) == run
    by_uuid = api.get(f"{A}/runs/get", params={"run_uuid": run_id})
    assert by_uuid.status_code == 200
    assert by_uuid.json()["run"] == run


def test_run_name_from_tag_or_generated(api):
    run = new_run(api, tags=[{"key": "mlflow.runName", "value": "from-tag"}])
    assert run["info"]["run_name"] == "from-tag"
    same = new_run(api, run_name="x", tags=[{"key": "mlflow.runName", "value": "x"}])
    assert same["info"]["run_name"] == "x"
    generated = new_run(api)
    name = generated["info"]["run_name"]
    assert name
    assert tags_of(generated)["mlflow.runName"] == name
    assert_error(api.post(f"{A}/runs/create", json={"experiment_id": "0", "run_name": "a",
                                                   "tags": [{"key": "mlflow.runName", "value": "b"}]}),
                 400, "INVALID_PARAMETER_VALUE", "different values")


@pytest.mark.parametrize(("body", "status", "code", "fragment"), [
    ({}, 400, "INVALID_PARAMETER_VALUE", "experiment_id"),
    ({"experiment_id": "nope"}, 400, "INVALID_PARAMETER_VALUE", "experiment"),
    ({"experiment_id": 0}, 400, "INVALID_PARAMETER_VALUE", "experiment_id"),
    ({"experiment_id": "123456"}, 404, "RESOURCE_DOES_NOT_EXIST", "123456"),
    ({"experiment_id": "0", "start_time": "soon"}, 400, "INVALID_PARAMETER_VALUE", "start_time"),
    ({"experiment_id": "0", "tags": [{"key": "bad*key", "value": "v"}]}, 400, "INVALID_PARAMETER_VALUE", "Names"),
    ({"experiment_id": "0", "tags": [{"key": "k", "value": "v" * 8001}]}, 400, "INVALID_PARAMETER_VALUE", "8000"),
    ({"experiment_id": "0", "run_name": "n" * 251}, 400, "INVALID_PARAMETER_VALUE", "250"),
    ({"experiment_id": "0", "user_id": "u" * 257}, 400, "INVALID_PARAMETER_VALUE", "user_id"),
    ({"experiment_id": "0", "tags": {"key": "k"}}, 400, "INVALID_PARAMETER_VALUE", "tags"),
])
def test_create_run_validation(api, body, status, code, fragment):
    assert_error(api.post(f"{A}/runs/create", json=body), status, code, fragment)


def test_get_run_errors(api):
    assert_error(api.get(f"{A}/runs/get", params={"run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(api.get(f"{A}/runs/get", params={"run_id": "../../etc"}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(api.get(f"{A}/runs/get", params={"run_id": "a" * 300}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(api.get(f"{A}/runs/get", params={"run_id": "a" * 32 + "\n"}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(api.get(f"{A}/runs/get"), 400, "INVALID_PARAMETER_VALUE", "run_id")


# --- update / delete / restore ----------------------------------------------------------------

def test_update_run(api):
    run_id = new_run(api, run_name="before")["info"]["run_id"]
    resp = api.post(f"{A}/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": 99,
                                             "run_name": "after"})
    assert resp.status_code == 200, resp.text
    info = resp.json()["run_info"]
    assert info["status"] == "FINISHED"
    assert info["end_time"] == 99
    assert info["run_name"] == "after"
    run = get_run(api, run_id)
    assert run["info"] == info
    assert tags_of(run)["mlflow.runName"] == "after"
    # Fields left out stay as they are.
    info2 = api.post(f"{A}/runs/update", json={"run_uuid": run_id, "status": "FAILED"}).json()["run_info"]
    assert (info2["status"], info2["end_time"], info2["run_name"]) == ("FAILED", 99, "after")


def test_update_run_errors(api):
    run_id = new_run(api)["info"]["run_id"]
    assert_error(api.post(f"{A}/runs/update", json={"run_id": run_id, "status": "DONE"}), 400,
                 "INVALID_PARAMETER_VALUE", "status")
    assert_error(api.post(f"{A}/runs/update", json={"run_id": run_id, "end_time": "late"}), 400,
                 "INVALID_PARAMETER_VALUE", "end_time")
    assert_error(api.post(f"{A}/runs/update", json={"run_id": "f" * 32, "status": "FINISHED"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert get_run(api, run_id)["info"]["status"] == "RUNNING"


def test_delete_restore_and_writes_to_deleted_runs(api):
    run_id = new_run(api)["info"]["run_id"]
    assert post(api, "runs/delete", {"run_id": run_id}) == {}
    assert get_run(api, run_id)["info"]["lifecycle_stage"] == "deleted"
    writes = [
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v"}),
        ("runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}),
        ("runs/delete-tag", {"run_id": run_id, "key": "mlflow.runName"}),
        ("runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "v"}]}),
        ("runs/update", {"run_id": run_id, "status": "FINISHED"}),
        ("runs/log-inputs", {"run_id": run_id, "models": [{"model_id": "m-1"}]}),
        ("runs/outputs", {"run_id": run_id, "models": [{"model_id": "m-1", "step": 1}]}),
    ]
    for path, body in writes:
        assert_error(api.post(f"{A}/{path}", json=body), 400, "INVALID_PARAMETER_VALUE", "active")
    run = get_run(api, run_id)
    assert run["data"]["metrics"] == []
    assert run["data"]["params"] == []
    assert "t" not in tags_of(run)
    assert post(api, "runs/restore", {"run_id": run_id}) == {}
    assert get_run(api, run_id)["info"]["lifecycle_stage"] == "active"
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v"})
    assert get_run(api, run_id)["data"]["params"] == [{"key": "p", "value": "v"}]
    assert_error(api.post(f"{A}/runs/delete", json={"run_id": "e" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(api.post(f"{A}/runs/restore", json={"run_id": "e" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_restored_run_in_deleted_experiment_stays_read_only(api):
    eid = new_experiment(api)
    run_id = new_run(api, eid)["info"]["run_id"]
    post(api, "experiments/delete", {"experiment_id": eid})
    post(api, "runs/restore", {"run_id": run_id})
    assert_error(api.post(f"{A}/runs/set-tag", json={"run_id": run_id, "key": "t", "value": "v"}), 400,
                 "INVALID_PARAMETER_VALUE", f"experiment {eid}")


# --- tags -------------------------------------------------------------------------------------

def test_set_and_delete_tags(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/set-tag", {"run_id": run_id, "key": "a/b.c-d e:f", "value": "1"})
    post(api, "runs/set-tag", {"run_uuid": run_id, "key": "a/b.c-d e:f", "value": "2"})
    post(api, "runs/set-tag", {"run_id": run_id, "key": "big", "value": "x" * 8000})
    post(api, "runs/set-tag", {"run_id": run_id, "key": "empty"})
    tags = tags_of(get_run(api, run_id))
    assert tags["a/b.c-d e:f"] == "2"
    assert tags["big"] == "x" * 8000
    assert tags["empty"] == ""
    post(api, "runs/delete-tag", {"run_id": run_id, "key": "big"})
    assert "big" not in tags_of(get_run(api, run_id))
    assert_error(api.post(f"{A}/runs/delete-tag", json={"run_id": run_id, "key": "big"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")


def test_run_name_tag_renames_the_run(api):
    run_id = new_run(api, run_name="one")["info"]["run_id"]
    post(api, "runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": "two"})
    run = get_run(api, run_id)
    assert run["info"]["run_name"] == "two"
    assert tags_of(run)["mlflow.runName"] == "two"
    post(api, "runs/log-batch", {"run_id": run_id, "tags": [{"key": "mlflow.runName", "value": "three"}]})
    assert get_run(api, run_id)["info"]["run_name"] == "three"


@pytest.mark.parametrize(("key", "fragment"), [
    ("", "key"),
    ("/leading", "resolve"),
    ("a/../b", "resolve"),
    ("..", "resolve"),
    ("a//b", "resolve"),
    ("trailing/", "resolve"),
    ("semi;colon", "Names may only contain"),
    ("newline\n", "Names may only contain"),
    ("k" * 251, "250"),
])
def test_tag_key_rules(api, key, fragment):
    run_id = new_run(api)["info"]["run_id"]
    assert_error(api.post(f"{A}/runs/set-tag", json={"run_id": run_id, "key": key, "value": "v"}), 400,
                 "INVALID_PARAMETER_VALUE", fragment)
    assert set(tags_of(get_run(api, run_id))) == {"mlflow.runName"}


def test_tag_value_too_long_changes_nothing(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/set-tag", {"run_id": run_id, "key": "t", "value": "old"})
    assert_error(api.post(f"{A}/runs/set-tag", json={"run_id": run_id, "key": "t", "value": "v" * 8001}), 400,
                 "INVALID_PARAMETER_VALUE", "8000")
    assert tags_of(get_run(api, run_id))["t"] == "old"


def test_nul_character_is_refused_or_stored_exactly(api):
    run_id = new_run(api)["info"]["run_id"]
    resp = api.post(f"{A}/runs/set-tag", json={"run_id": run_id, "key": "t", "value": "a\x00b"})
    if api.backend == "postgresql":
        assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
        assert "t" not in tags_of(get_run(api, run_id))
    else:
        assert resp.status_code == 200
        assert tags_of(get_run(api, run_id))["t"] == "a\x00b"


# --- params -----------------------------------------------------------------------------------

def test_params_are_immutable(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    assert_error(api.post(f"{A}/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.2"}), 400,
                 "INVALID_PARAMETER_VALUE", "Changing param values is not allowed")
    assert get_run(api, run_id)["data"]["params"] == [{"key": "lr", "value": "0.1"}]


def test_param_limits(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "p" * 250, "value": "v" * 6000})
    assert_error(api.post(f"{A}/runs/log-parameter", json={"run_id": run_id, "key": "q", "value": "v" * 6001}),
                 400, "INVALID_PARAMETER_VALUE", "6000")
    assert_error(api.post(f"{A}/runs/log-parameter", json={"run_id": run_id, "key": "q" * 251, "value": "v"}),
                 400, "INVALID_PARAMETER_VALUE", "250")
    assert_error(api.post(f"{A}/runs/log-parameter", json={"run_id": run_id, "key": "q", "value": 5}),
                 400, "INVALID_PARAMETER_VALUE", "value")
    assert_error(api.post(f"{A}/runs/log-parameter", json={"run_id": run_id, "value": "v"}),
                 400, "INVALID_PARAMETER_VALUE", "key")
    assert get_run(api, run_id)["data"]["params"] == [{"key": "p" * 250, "value": "v" * 6000}]


# --- metrics ----------------------------------------------------------------------------------

def test_log_metric_values_and_latest(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/log-metric", {"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 1})
    post(api, "runs/log-metric", {"run_id": run_id, "key": "inf", "value": "Infinity", "timestamp": 1, "step": 2})
    post(api, "runs/log-metric", {"run_id": run_id, "key": "ninf", "value": "-Infinity", "timestamp": 1})
    post(api, "runs/log-metric", {"run_id": run_id, "key": "acc", "value": 0.5, "timestamp": 10})
    metrics = metrics_of(get_run(api, run_id))
    assert metrics["nan"] == ("NaN", 0, 1)
    assert metrics["inf"] == ("Infinity", 2, 1)
    assert metrics["ninf"] == ("-Infinity", 0, 1)
    assert metrics["acc"] == (0.5, 0, 10)


def test_latest_metric_follows_step_then_timestamp_then_value(api):
    run_id = new_run(api)["info"]["run_id"]
    points = [(1.0, 5, 100), (2.0, 7, 50), (0.5, 7, 50), (9.0, 6, 999), (3.0, 7, 40)]
    for value, step, ts in points:
        post(api, "runs/log-metric", {"run_id": run_id, "key": "m", "value": value, "timestamp": ts, "step": step})
    # Highest step is 7; among step 7, timestamp 50 beats 40; among those, value 2.0 beats 0.5.
    assert metrics_of(get_run(api, run_id))["m"] == (2.0, 7, 50)
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "m", "value": 1.0, "timestamp": 1, "step": 8}, {"key": "m", "value": 0.1, "timestamp": 2, "step": 8}]})
    assert metrics_of(get_run(api, run_id))["m"] == (0.1, 8, 2)


def test_metric_history_keeps_every_point_once(api):
    run_id = new_run(api)["info"]["run_id"]
    for body in ({"value": 1.0, "timestamp": 3, "step": 0}, {"value": 1.0, "timestamp": 3, "step": 0},
                 {"value": 2.0, "timestamp": 1, "step": 1},
                 {"value": 3.0, "timestamp": 2, "step": 2, "model_id": "m-abc", "dataset_name": "train",
                  "dataset_digest": "d1"}):
        post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", **body})
    got = history(api, run_id, "loss")
    assert got == {"metrics": [
        {"key": "loss", "value": 2.0, "timestamp": 1, "step": 1},
        {"key": "loss", "value": 3.0, "timestamp": 2, "step": 2, "dataset_name": "train", "dataset_digest": "d1",
         "model_id": "m-abc"},
        {"key": "loss", "value": 1.0, "timestamp": 3, "step": 0},
    ]}
    assert history(api, run_id, "other") == {"metrics": []}


def test_metric_history_pages(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "m", "value": float(i), "timestamp": 100 + i, "step": i} for i in range(7)]})
    seen, token, pages = [], None, 0
    while True:
        params = {"max_results": 3, **({"page_token": token} if token else {})}
        page = history(api, run_id, "m", **params)
        pages += 1
        assert len(page["metrics"]) <= 3
        seen += [m["step"] for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
        assert pages < 10
    assert seen == list(range(7))
    assert pages == 3
    assert_error(api.get(f"{A}/metrics/get-history", params={"run_id": run_id, "metric_key": "m",
                                                             "page_token": "garbage!"}),
                 400, "INVALID_PARAMETER_VALUE", "page token")
    assert_error(api.get(f"{A}/metrics/get-history", params={"run_id": run_id, "metric_key": "m",
                                                             "max_results": 0}),
                 400, "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(api.get(f"{A}/metrics/get-history", params={"run_id": "a" * 32, "metric_key": "m"}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(api.get(f"{A}/metrics/get-history", params={"run_id": run_id}),
                 400, "INVALID_PARAMETER_VALUE", "metric_key")


@pytest.mark.parametrize(("body", "fragment"), [
    ({"key": "m", "timestamp": 1}, "value"),
    ({"key": "m", "value": 1}, "timestamp"),
    ({"value": 1, "timestamp": 1}, "key"),
    ({"key": "m", "value": "abc", "timestamp": 1}, "value"),
    ({"key": "m", "value": True, "timestamp": 1}, "value"),
    ({"key": "m", "value": 1, "timestamp": -5}, "timestamp"),
    ({"key": "m", "value": 1, "timestamp": 1, "step": "x"}, "step"),
    ({"key": "m", "value": 1, "timestamp": 1, "step": 2**70}, "step"),
    ({"key": "bad|key", "value": 1, "timestamp": 1}, "Names"),
    ({"key": "m" * 251, "value": 1, "timestamp": 1}, "250"),
    ({"key": "m", "value": [1], "timestamp": 1}, "value"),
])
def test_log_metric_validation(api, body, fragment):
    run_id = new_run(api)["info"]["run_id"]
    assert_error(api.post(f"{A}/runs/log-metric", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE",
                 fragment)
    assert get_run(api, run_id)["data"]["metrics"] == []


# --- log-batch --------------------------------------------------------------------------------

def test_log_batch_writes_everything(api):
    run_id = new_run(api)["info"]["run_id"]
    post(api, "runs/log-batch", {
        "run_id": run_id,
        "metrics": [{"key": "a", "value": 1.5, "timestamp": 5, "step": 1}, {"key": "b", "value": "NaN",
                                                                           "timestamp": 6}],
        "params": [{"key": "p1", "value": "x"}, {"key": "p2", "value": "y"}],
        "tags": [{"key": "t1", "value": "u"}, {"key": "t1", "value": "w"}],
    })
    run = get_run(api, run_id)
    assert metrics_of(run) == {"a": (1.5, 1, 5), "b": ("NaN", 0, 6)}
    assert run["data"]["params"] == [{"key": "p1", "value": "x"}, {"key": "p2", "value": "y"}]
    assert tags_of(run)["t1"] == "w"
    assert post(api, "runs/log-batch", {"run_id": run_id}) == {}


def test_log_batch_limits(api):
    run_id = new_run(api)["info"]["run_id"]
    metric = {"key": "m", "value": 1, "timestamp": 1}
    cases = [
        ({"metrics": [dict(metric, step=i) for i in range(1001)]}, "1000 metrics"),
        ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]}, "100 params"),
        ({"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]}, "100 tags"),
        ({"metrics": [dict(metric, step=i) for i in range(900)],
          "params": [{"key": f"p{i}", "value": "v"} for i in range(100)],
          "tags": [{"key": "t", "value": "v"}]}, "1000 metrics, params, and tags"),
    ]
    for extra, fragment in cases:
        assert_error(api.post(f"{A}/runs/log-batch", json={"run_id": run_id, **extra}), 400,
                     "INVALID_PARAMETER_VALUE", fragment)
    run = get_run(api, run_id)
    assert run["data"]["metrics"] == []
    assert run["data"]["params"] == []
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [dict(metric, step=i) for i in range(1000)]})
    assert len(history(api, run_id, "m")["metrics"]) == 1000


@pytest.mark.parametrize(("bad", "fragment"), [
    ({"metrics": [{"key": "ok", "value": 1, "timestamp": 1}, {"key": "bad!", "value": 1, "timestamp": 1}]},
     "metrics[1]"),
    ({"metrics": [{"key": "ok", "value": "zz", "timestamp": 1}]}, "metrics[0]"),
    ({"params": [{"key": "new", "value": "v"}, {"key": "fixed", "value": "changed"}]}, "Changing param"),
    ({"params": [{"key": "d", "value": "1"}, {"key": "d", "value": "1"}]}, "Duplicate parameter keys"),
    ({"params": [{"key": "long", "value": "v" * 6001}]}, "6000"),
    ({"tags": [{"key": "ok", "value": "v"}, {"key": "x", "value": "v" * 8001}]}, "8000"),
    ({"tags": [{"key": "mlflow.runName", "value": "n" * 251}]}, "250"),
    ({"metrics": "nope"}, "metrics"),
    ({"metrics": [5]}, "metrics"),
])
def test_log_batch_is_atomic(api, bad, fragment):
    run_id = new_run(api, run_name="keep")["info"]["run_id"]
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "fixed", "value": "orig"})
    before = get_run(api, run_id)
    body = {"run_id": run_id, "metrics": [{"key": "good", "value": 1, "timestamp": 1}],
            "params": [{"key": "fresh", "value": "v"}], "tags": [{"key": "newtag", "value": "v"}]}
    body.update(bad)
    assert_error(api.post(f"{A}/runs/log-batch", json=body), 400, "INVALID_PARAMETER_VALUE", fragment)
    assert get_run(api, run_id) == before
    assert history(api, run_id, "good") == {"metrics": []}


# --- inputs and outputs -----------------------------------------------------------------------

DATASET = {"name": "iris", "digest": "abc123", "source_type": "local", "source": '{"uri": "/data/iris.csv"}',
           "schema": '{"mlflow_colspec": []}', "profile": '{"num_rows": 150}'}


def test_log_inputs_and_outputs(api):
    eid = new_experiment(api)
    run_id = new_run(api, eid)["info"]["run_id"]
    body = {"run_id": run_id,
            "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": DATASET},
                         {"dataset": {"name": "test", "digest": "d2", "source_type": "http",
                                      "source": "{}"}}],
            "models": [{"model_id": "m-0123"}]}
    post(api, "runs/log-inputs", body)
    post(api, "runs/log-inputs", body)  # the same inputs again are not duplicated
    post(api, "runs/outputs", {"run_id": run_id, "models": [{"model_id": "m-out", "step": 4}]})
    run = get_run(api, run_id)
    assert run["inputs"] == {
        "dataset_inputs": [
            {"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": DATASET},
            {"tags": [], "dataset": {"name": "test", "digest": "d2", "source_type": "http", "source": "{}"}},
        ],
        "model_inputs": [{"model_id": "m-0123"}],
    }
    assert run["outputs"] == {"model_outputs": [{"model_id": "m-out", "step": 4}]}
    # A second run of the experiment reuses the dataset and carries its own input tags.
    other = new_run(api, eid)["info"]["run_id"]
    post(api, "runs/log-inputs", {"run_id": other, "datasets": [
        {"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": DATASET}]})
    assert get_run(api, other)["inputs"]["dataset_inputs"] == [
        {"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": DATASET}]
    assert get_run(api, run_id)["inputs"]["dataset_inputs"][0]["tags"] == [
        {"key": "mlflow.data.context", "value": "train"}]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"datasets": [{"dataset": {**DATASET, "digest": None}}]}, "digest"),
    ({"datasets": [{"dataset": {**DATASET, "name": "n" * 501}}]}, "500"),
    ({"datasets": [{"dataset": {**DATASET, "digest": "d" * 37}}]}, "36"),
    ({"datasets": [{"dataset": {**DATASET, "source": 5}}]}, "source"),
    ({"datasets": [{"tags": [{"key": "k" * 256, "value": "v"}], "dataset": DATASET}]}, "255"),
    ({"datasets": [{"tags": [{"key": "k", "value": "v" * 501}], "dataset": DATASET}]}, "500"),
    ({"datasets": [{"tags": [{"key": "k"}], "dataset": DATASET}]}, "value"),
    ({"datasets": [{}]}, "dataset"),
    ({"datasets": "x"}, "datasets"),
    ({"models": [{"model_id": 3}]}, "model_id"),
    ({"models": [{}]}, "model_id"),
])
def test_log_inputs_validation(api, body, fragment):
    run_id = new_run(api)["info"]["run_id"]
    assert_error(api.post(f"{A}/runs/log-inputs", json={"run_id": run_id, **body}), 400,
                 "INVALID_PARAMETER_VALUE", fragment)
    assert get_run(api, run_id)["inputs"] == {"dataset_inputs": [], "model_inputs": []}


def test_log_outputs_validation(api):
    run_id = new_run(api)["info"]["run_id"]
    assert_error(api.post(f"{A}/runs/outputs", json={"run_id": run_id}), 400, "INVALID_PARAMETER_VALUE", "models")
    assert_error(api.post(f"{A}/runs/outputs", json={"run_id": run_id, "models": [{"model_id": "m", "step": "x"}]}),
                 400, "INVALID_PARAMETER_VALUE", "step")
    assert_error(api.post(f"{A}/runs/outputs", json={"run_id": "b" * 32, "models": [{"model_id": "m"}]}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert get_run(api, run_id)["outputs"] == {"model_outputs": []}


# --- bulk interval ----------------------------------------------------------------------------

def bulk(api, **params):
    """The bulk-interval response (query string as MLflow's UI sends it)."""
    resp = api.get(f"{A}/metrics/get-history-bulk-interval", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["metrics"]


def test_bulk_interval_sampling(api):
    r1 = new_run(api)["info"]["run_id"]
    r2 = new_run(api)["info"]["run_id"]
    post(api, "runs/log-batch", {"run_id": r1, "metrics": [
        {"key": "m", "value": float(s), "timestamp": 1000 + s, "step": s} for s in range(10)]})
    post(api, "runs/log-batch", {"run_id": r2, "metrics": [
        {"key": "m", "value": 0.5, "timestamp": 1, "step": 3}]})
    # 10 points in 4 buckets of sizes 3,3,2,2: the first of each (steps 0,3,6,8) with the last
    # point (step 9) replacing the final sample because the page is full.
    got = bulk(api, run_ids=[r1, r2], metric_key="m", max_results=4)
    assert [(m["run_id"], m["step"]) for m in got] == [(r1, 0), (r1, 3), (r1, 6), (r1, 9), (r2, 3)]
    assert got[0] == {"key": "m", "value": 0.0, "timestamp": 1000, "step": 0, "run_id": r1}
    # Fewer points than max_results: everything, in step order.
    assert [m["step"] for m in bulk(api, run_ids=[r1], metric_key="m")] == list(range(10))
    # A step range limits the points sampled; first and last of the range are kept.
    ranged = bulk(api, run_ids=[r1], metric_key="m", start_step=2, end_step=7, max_results=3)
    assert [m["step"] for m in ranged] == [2, 4, 7]
    assert [m["step"] for m in bulk(api, run_ids=[r1], metric_key="m", max_results=1)] == [9]


def test_bulk_interval_validation(api):
    run_id = new_run(api)["info"]["run_id"]
    path = f"{A}/metrics/get-history-bulk-interval"
    assert_error(api.get(path, params={"metric_key": "m"}), 400, "INVALID_PARAMETER_VALUE", "run_ids")
    assert_error(api.get(path, params={"run_ids": [run_id]}), 400, "INVALID_PARAMETER_VALUE", "metric_key")
    assert_error(api.get(path, params={"run_ids": [run_id] * 101, "metric_key": "m"}), 400,
                 "INVALID_PARAMETER_VALUE", "at most 100")
    for bad in (0, 2501, "x"):
        assert_error(api.get(path, params={"run_ids": [run_id], "metric_key": "m", "max_results": bad}), 400,
                     "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(api.get(path, params={"run_ids": [run_id], "metric_key": "m", "start_step": 1}), 400,
                 "INVALID_PARAMETER_VALUE", "both")
    assert_error(api.get(path, params={"run_ids": [run_id], "metric_key": "m", "start_step": 5, "end_step": 1}),
                 400, "INVALID_PARAMETER_VALUE", "start_step")
    assert_error(api.get(path, params={"run_ids": [run_id, "c" * 32], "metric_key": "m"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")


# --- malformed requests -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "raw"), [
    ("runs/log-batch", b'{"run_id": '),
    ("runs/log-batch", b'{"run_id": "x", "run_id": "y"}'),
    ("runs/log-metric", b'{"run_id": "abc", "key": "m", "value": NaN, "timestamp": 1}'),
    ("runs/create", b"[]"),
    ("runs/set-tag", b'{"run_id": ["a", "b"], "key": "k", "value": "v"}'),
    ("runs/log-parameter", b'{"run_id": {"x": 1}, "key": "k", "value": "v"}'),
])
def test_malformed_requests_are_4xx(api, path, raw):
    resp = api.post(f"{A}/{path}", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["error_code"] in ("MALFORMED_REQUEST", "INVALID_PARAMETER_VALUE")


def test_float_values_round_trip_exactly(api):
    run_id = new_run(api)["info"]["run_id"]
    values = [1e-300, -2.5e300, 0.1 + 0.2, 123456789.123456789]
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "f", "value": v, "timestamp": i, "step": i} for i, v in enumerate(values)]})
    got = [m["value"] for m in history(api, run_id, "f")["metrics"]]
    assert got == values
    assert all(not math.isnan(v) for v in got)


@pytest.mark.parametrize(("path", "template"), [
    ("runs/set-tag", b'{"run_id": "RUN", "key": "k", "value": "\\ud800"}'),
    ("runs/set-tag", b'{"run_id": "RUN", "key": "k\\udfff", "value": "v"}'),
    ("runs/log-batch", b'{"run_id": "RUN", "params": [{"key": "p", "value": "\\udbff"}]}'),
    ("runs/log-metric", b'{"run_id": "RUN", "key": "m", "timestamp": 1, "value": 1' + b"0" * 400 + b"}"),
])
def test_unstorable_values_are_400_and_change_nothing(api, path, template):
    run_id = new_run(api)["info"]["run_id"]
    before = get_run(api, run_id)
    resp = api.post(f"{A}/{path}", content=template.replace(b"RUN", run_id.encode()),
                    headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert get_run(api, run_id) == before


def test_paired_surrogates_are_ordinary_characters(api):
    run_id = new_run(api)["info"]["run_id"]
    resp = api.post(f"{A}/runs/set-tag", content=f'{{"run_id": "{run_id}", "key": "k", "value": "\\ud83d\\ude00"}}',
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    assert tags_of(get_run(api, run_id))["k"] == "\U0001F600"


def test_nul_in_read_parameters_is_never_a_server_error(api):
    run_id = new_run(api)["info"]["run_id"]
    for path, params in ((f"{A}/experiments/get-by-name", {"experiment_name": "a\x00b"}),
                         (f"{A}/metrics/get-history", {"run_id": run_id, "metric_key": "a\x00"})):
        resp = api.get(path, params=params)
        if api.backend == "postgresql":
            assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
        else:
            assert resp.status_code in (200, 404)


def test_bulk_interval_positions_are_those_of_sql_ntile():
    """The positions computed from a run's count are the ones the former one-query sampling chose with SQL's
    ntile (first point of each bucket, the last point replacing the final sample when every bucket has one)."""
    import sqlite3

    from tracking.store.metrics import sampled_positions

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE p (x INTEGER)")
    for count in range(1, 70):
        db.execute("INSERT INTO p VALUES (?)", (count,))
        for max_results in range(1, 25):
            rows = db.execute("SELECT x, ntile(?) OVER (ORDER BY x) FROM p ORDER BY x", (max_results,)).fetchall()
            firsts = [x for n, (x, bucket) in enumerate(rows) if n == 0 or rows[n - 1][1] != bucket]
            if firsts[-1] != count:
                if len(firsts) >= max_results:
                    firsts[-1] = count
                else:
                    firsts.append(count)
            assert sampled_positions(count, max_results) == firsts, (count, max_results)
