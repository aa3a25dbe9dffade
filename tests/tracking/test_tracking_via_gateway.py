"""The experiments and runs endpoints through the whole gateway (the ``client`` fixture authenticates)."""

from __future__ import annotations

A = "/api/2.0/mlflow"


def test_run_flow_through_the_gateway(client):
    eid = client.post(f"{A}/experiments/create", json={"name": "via-gateway"}).json()["experiment_id"]
    run = client.post(f"{A}/runs/create", json={"experiment_id": eid, "run_name": "r"})
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    batch = client.post(f"{A}/runs/log-batch", json={
        "run_id": run_id, "metrics": [{"key": "m", "value": 1.5, "timestamp": 1, "step": 2}],
        "params": [{"key": "p", "value": "v"}], "tags": [{"key": "t", "value": "u"}]})
    assert batch.status_code == 200, batch.text
    got = client.get(f"{A}/runs/get", params={"run_id": run_id})
    assert got.status_code == 200
    data = got.json()["run"]["data"]
    assert data["metrics"] == [{"key": "m", "value": 1.5, "timestamp": 1, "step": 2}]
    assert data["params"] == [{"key": "p", "value": "v"}]
    assert {"key": "t", "value": "u"} in data["tags"]
    ajax = client.get("/ajax-api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": "m"})
    assert ajax.status_code == 200
    assert ajax.json()["metrics"] == [{"key": "m", "value": 1.5, "timestamp": 1, "step": 2}]


def test_errors_keep_mlflow_shape_through_the_gateway(client):
    resp = client.get(f"{A}/runs/get", params={"run_id": "a" * 32})
    assert resp.status_code == 404
    assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    resp = client.post(f"{A}/runs/log-batch", content=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error_code"] in ("MALFORMED_REQUEST", "INVALID_PARAMETER_VALUE")
