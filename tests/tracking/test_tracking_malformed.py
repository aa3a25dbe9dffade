"""Type confusion on every field of every experiments/runs endpoint: always a JSON answer, never a 5xx."""

from __future__ import annotations

import uuid

import pytest

from tests.tracking.tracking_app import tracking_client

A = "/api/2.0/mlflow"
# One value of each JSON shape plus edge cases: wrong types, empty, huge, special strings.
ODD_VALUES = [None, 0, -1, 1.5, True, "", "s", "x" * 9000, [], {}, [1], ["a", "b"], {"a": 1}, [{}],
              [{"key": 1}], "NaN", 2**64]
ODD_QUERY_VALUES = ["", "x" * 5000, "-1", "abc", "1.5", "99999999999999999999", "%", "NaN"]


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def api(request, tmp_path_factory):
    """One tracking app per backend for the whole module (requests here only need to not crash it)."""
    with tracking_client(request.param, tmp_path_factory.mktemp(request.param)) as client:
        yield client


def _variants(body: dict):
    """``body`` with each field, and each field of its first nested object, replaced by each odd value."""
    for key, value in body.items():
        for odd in ODD_VALUES:
            yield {**body, key: odd}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for sub in _variants(value[0]):
                yield {**body, key: [sub]}
        if isinstance(value, dict):
            for sub in _variants(value):
                yield {**body, key: sub}


def _bodies(eid: str, rid: str) -> dict[str, dict]:
    dataset = {"name": "d", "digest": "g", "source_type": "s", "source": "x", "schema": "s", "profile": "p"}
    return {
        "experiments/create": {"name": "n", "artifact_location": "mlflow-artifacts:/x",
                               "tags": [{"key": "a", "value": "b"}]},
        "experiments/update": {"experiment_id": eid, "new_name": "n2"},
        "experiments/set-experiment-tag": {"experiment_id": eid, "key": "k", "value": "v"},
        "experiments/delete-experiment-tag": {"experiment_id": eid, "key": "k"},
        "runs/create": {"experiment_id": eid, "user_id": "u", "start_time": 1, "run_name": "r",
                        "tags": [{"key": "a", "value": "b"}]},
        "runs/update": {"run_id": rid, "status": "RUNNING", "end_time": 5, "run_name": "rr"},
        "runs/set-tag": {"run_id": rid, "key": "k", "value": "v"},
        "runs/delete-tag": {"run_id": rid, "key": "k"},
        "runs/log-metric": {"run_id": rid, "key": "m", "value": 1, "timestamp": 1, "step": 1, "model_id": "m-1",
                            "dataset_name": "d", "dataset_digest": "g"},
        "runs/log-parameter": {"run_id": rid, "key": "p", "value": "v"},
        "runs/log-batch": {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 1}],
                           "params": [{"key": "p", "value": "v"}], "tags": [{"key": "t", "value": "v"}]},
        "runs/log-inputs": {"run_id": rid, "datasets": [{"tags": [{"key": "a", "value": "b"}], "dataset": dataset}],
                            "models": [{"model_id": "m-1"}]},
        "runs/outputs": {"run_id": rid, "models": [{"model_id": "m-1", "step": 1}]},
    }


def _setup(api) -> tuple[str, str]:
    eid = api.post(f"{A}/experiments/create", json={"name": f"fuzz-{uuid.uuid4().hex}"}).json()["experiment_id"]
    rid = api.post(f"{A}/runs/create", json={"experiment_id": eid}).json()["run"]["info"]["run_id"]
    return eid, rid


@pytest.mark.parametrize("path", list(_bodies("0", "r")))
def test_post_endpoints_never_fail_with_5xx(api, path):
    eid, rid = _setup(api)
    for variant in _variants(_bodies(eid, rid)[path]):
        resp = api.post(f"{A}/{path}", json=variant)
        assert resp.status_code < 500, (variant, resp.text)
        assert resp.headers["content-type"] == "application/json"
        if resp.status_code >= 400:
            assert set(resp.json()) == {"error_code", "message"}


def test_get_endpoints_never_fail_with_5xx(api):
    eid, rid = _setup(api)
    reads = {
        "experiments/get": {"experiment_id": eid},
        "experiments/get-by-name": {"experiment_name": "f"},
        "runs/get": {"run_id": rid},
        "metrics/get-history": {"run_id": rid, "metric_key": "m", "max_results": "2"},
        "metrics/get-history-bulk-interval": {"run_ids": rid, "metric_key": "m", "start_step": "1", "end_step": "2",
                                              "max_results": "3"},
    }
    for path, params in reads.items():
        for key in [*params, "page_token"]:
            for odd in ODD_QUERY_VALUES:
                resp = api.get(f"{A}/{path}", params={**params, key: odd})
                assert resp.status_code < 500, (path, key, odd, resp.text)
                assert resp.headers["content-type"] == "application/json"
