"""Logged models over REST: create, get, finalize, tags, params, delete, linked metrics, errors."""

from __future__ import annotations

import pytest

from tests.tracking.mlflow3_fixtures import (
    experiment_count,
    log_model_metric,
    make_experiment,
    make_run,
)
from tracking.db.mlflow3_tables import logged_models

A = "/api/2.0/mlflow"


def create(client, exp_id, **fields):
    resp = client.post(f"{A}/logged-models", json={"experiment_id": exp_id, **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["model"]


def test_create_returns_mlflow_shape(client):
    exp_id = make_experiment(client)
    run_id = make_run(client, exp_id)
    model = create(client, exp_id, name="clf", model_type="sklearn", source_run_id=run_id,
                   params=[{"key": "alpha", "value": "0.5"}], tags=[{"key": "team", "value": "ml"}])
    info = model["info"]
    assert info["model_id"].startswith("m-")
    assert len(info["model_id"]) == 34
    assert info["experiment_id"] == exp_id
    assert info["name"] == "clf"
    assert info["model_type"] == "sklearn"
    assert info["source_run_id"] == run_id
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/models/{info['model_id']}/artifacts"
    assert info["tags"] == [{"key": "team", "value": "ml"}]
    assert model["data"]["params"] == [{"key": "alpha", "value": "0.5"}]
    assert model["data"]["metrics"] == []
    assert info["creation_timestamp_ms"] == info["last_updated_timestamp_ms"] > 0


def test_get_finalize_and_ajax_mount(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id, name="m")["info"]["model_id"]
    resp = client.patch(f"{A}/logged-models/{model_id}", json={"model_id": model_id, "status": "LOGGED_MODEL_READY"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    got = client.get(f"/ajax-api/2.0/mlflow/logged-models/{model_id}")
    assert got.status_code == 200
    assert got.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    # Status by number, as the proto enum allows.
    resp = client.patch(f"{A}/logged-models/{model_id}", json={"status": 3})
    assert resp.json()["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"


def test_tags_set_overwrite_and_delete(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id, tags=[{"key": "a", "value": "1"}])["info"]["model_id"]
    resp = client.patch(f"{A}/logged-models/{model_id}/tags",
                        json={"tags": [{"key": "a", "value": "2"}, {"key": "b/c", "value": "3"}]})
    assert resp.status_code == 200, resp.text
    tags = client.get(f"{A}/logged-models/{model_id}").json()["model"]["info"]["tags"]
    assert tags == [{"key": "a", "value": "2"}, {"key": "b/c", "value": "3"}]
    assert client.delete(f"{A}/logged-models/{model_id}/tags/b/c").status_code == 200
    tags = client.get(f"{A}/logged-models/{model_id}").json()["model"]["info"]["tags"]
    assert tags == [{"key": "a", "value": "2"}]
    missing = client.delete(f"{A}/logged-models/{model_id}/tags/nope")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_log_params_keeps_first_value(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    ok = client.post(f"{A}/logged-models/{model_id}/params",
                     json={"model_id": model_id, "params": [{"key": "lr", "value": "0.1"}]})
    assert ok.status_code == 200, ok.text
    same = client.post(f"{A}/logged-models/{model_id}/params", json={"params": [{"key": "lr", "value": "0.1"}]})
    assert same.status_code == 200
    changed = client.post(f"{A}/logged-models/{model_id}/params", json={"params": [{"key": "lr", "value": "9"}]})
    assert changed.status_code == 400
    assert client.get(f"{A}/logged-models/{model_id}").json()["model"]["data"]["params"] == [
        {"key": "lr", "value": "0.1"}]


def test_delete_hides_model(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    assert client.delete(f"{A}/logged-models/{model_id}").status_code == 200
    gone = client.get(f"{A}/logged-models/{model_id}")
    assert gone.status_code == 404
    assert gone.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                           "message": f"Logged model with ID '{model_id}' not found."}
    assert client.get(f"{A}/logged-models/{model_id}?allow_deleted=true").status_code == 200
    assert client.delete(f"{A}/logged-models/{model_id}").status_code == 404


def test_metrics_linked_by_model_id_appear_in_data(client):
    exp_id = make_experiment(client)
    run_id = make_run(client, exp_id)
    model_id = create(client, exp_id, source_run_id=run_id)["info"]["model_id"]
    log_model_metric(client, run_id, model_id, "acc", 0.9, step=1, dataset_name="eval", dataset_digest="d1")
    metrics = client.get(f"{A}/logged-models/{model_id}").json()["model"]["data"]["metrics"]
    assert metrics == [{"key": "acc", "value": 0.9, "timestamp": 1000, "step": 1, "model_id": model_id,
                        "run_id": run_id, "dataset_name": "eval", "dataset_digest": "d1"}]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "999999"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ({"experiment_id": "abc"}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "EXP", "name": "a/b"}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "EXP", "tags": [{"key": "../x", "value": "1"}]}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "EXP", "params": [{"key": "k", "value": "v" * 6001}]}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "EXP", "tags": "nope"}, 400, "INVALID_PARAMETER_VALUE"),
    ({"experiment_id": "DELETED"}, 400, "INVALID_STATE"),
])
def test_create_refuses_bad_input_and_writes_nothing(client, body, status, code):
    exp_id = make_experiment(client)
    deleted = make_experiment(client, deleted=True)
    body = {k: (exp_id if v == "EXP" else deleted if v == "DELETED" else v) for k, v in body.items()}
    resp = client.post(f"{A}/logged-models", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error_code"] == code
    assert experiment_count(client, logged_models) == 0


@pytest.mark.parametrize("status", ["READY", "LOGGED_MODEL_STATUS_UNSPECIFIED", 7, True, None])
def test_finalize_refuses_bad_status(client, status):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    resp = client.patch(f"{A}/logged-models/{model_id}", json={"status": status})
    assert resp.status_code == 400
    assert client.get(f"{A}/logged-models/{model_id}").json()["model"]["info"]["status"] == "LOGGED_MODEL_PENDING"


def test_body_model_id_must_match_path(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    resp = client.patch(f"{A}/logged-models/{model_id}", json={"model_id": "m-other", "status": 2})
    assert resp.status_code == 400


def test_unknown_model_is_404_everywhere(client):
    mid = "m-0123456789abcdef0123456789abcdef"
    assert client.get(f"{A}/logged-models/{mid}").status_code == 404
    assert client.patch(f"{A}/logged-models/{mid}", json={"status": 2}).status_code == 404
    assert client.patch(f"{A}/logged-models/{mid}/tags", json={"tags": [{"key": "a", "value": "b"}]}).status_code == 404
    assert client.post(f"{A}/logged-models/{mid}/params", json={"params": []}).status_code == 404
    assert client.delete(f"{A}/logged-models/{mid}/tags/a").status_code == 404


def test_artifacts_listed_and_downloaded_through_the_model(client):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/models/{model_id}/artifacts"
    assert client.put(f"{base}/MLmodel", content=b"flavors: {}\n").status_code == 200
    assert client.put(f"{base}/data/model.pkl", content=b"\x80\x04").status_code == 200

    root = client.get(f"{A}/logged-models/{model_id}/artifacts/directories")
    assert root.status_code == 200, root.text
    assert root.json() == {
        "root_uri": f"mlflow-artifacts:/{exp_id}/models/{model_id}/artifacts",
        "files": [{"path": "MLmodel", "is_dir": False, "file_size": 12}, {"path": "data", "is_dir": True}]}
    sub = client.get(f"{A}/logged-models/{model_id}/artifacts/directories",
                     params={"artifact_directory_path": "data"})
    assert sub.json()["files"] == [{"path": "data/model.pkl", "is_dir": False, "file_size": 2}]

    got = client.get(f"{A}/logged-models/{model_id}/artifacts/files", params={"artifact_file_path": "data/model.pkl"})
    assert got.status_code == 200
    assert got.content == b"\x80\x04"


@pytest.mark.parametrize(("endpoint", "params"), [
    ("directories", {"artifact_directory_path": "../../other"}),
    ("files", {"artifact_file_path": "../../../etc/passwd"}),
    ("files", {"artifact_file_path": "/etc/passwd"}),
    ("files", {}),
])
def test_artifact_paths_cannot_escape_the_model(client, endpoint, params):
    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    resp = client.get(f"{A}/logged-models/{model_id}/artifacts/{endpoint}", params=params)
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_experiment_lookup_for_authorization(client):
    from tracking.store.logged_models import get_logged_model_experiment_id

    exp_id = make_experiment(client)
    model_id = create(client, exp_id)["info"]["model_id"]
    engine = client.app.state.tracking.engine
    with engine.connect() as conn:
        assert get_logged_model_experiment_id(conn, model_id) == exp_id
        assert get_logged_model_experiment_id(conn, "m-" + "0" * 32) is None
