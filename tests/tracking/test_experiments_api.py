"""Experiments REST API: MLflow's request fields, response JSON, status codes and error codes."""

from __future__ import annotations

import pytest

from tests.tracking.tracking_app import tracking_client

A = "/api/2.0/mlflow"


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, tmp_path):
    """A TestClient over a fresh tracking app (routers and error translation) on each backend."""
    with tracking_client(request.param, tmp_path) as c:
        yield c


def create(client, name, **fields):
    """Create an experiment and return its id (asserting success)."""
    resp = client.post(f"{A}/experiments/create", json={"name": name, **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["experiment_id"]


def get(client, experiment_id):
    """The experiment JSON."""
    resp = client.get(f"{A}/experiments/get", params={"experiment_id": experiment_id})
    assert resp.status_code == 200, resp.text
    return resp.json()["experiment"]


def assert_error(resp, status, code, fragment=None):
    """An MLflow-style error body with this status and code."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    if fragment is not None:
        assert fragment in body["message"]


def test_default_experiment_exists(client):
    exp = get(client, "0")
    assert exp["name"] == "Default"
    assert exp["artifact_location"] == "mlflow-artifacts:/0"
    assert exp["lifecycle_stage"] == "active"


def test_create_and_get_round_trip(client):
    eid = create(client, "exp-a", tags=[{"key": "team", "value": "vision"}, {"key": "k2", "value": ""}])
    assert eid.isdigit()
    assert eid != "0"
    exp = get(client, eid)
    assert exp["experiment_id"] == eid
    assert exp["name"] == "exp-a"
    assert exp["artifact_location"] == f"mlflow-artifacts:/{eid}"
    assert exp["lifecycle_stage"] == "active"
    assert isinstance(exp["creation_time"], int)
    assert exp["creation_time"] == exp["last_update_time"]
    assert exp["tags"] == [{"key": "k2", "value": ""}, {"key": "team", "value": "vision"}]
    by_name = client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "exp-a"})
    assert by_name.status_code == 200
    assert by_name.json()["experiment"] == exp


def test_ajax_prefix_serves_the_same_api(client):
    eid = create(client, "exp-ajax")
    resp = client.get("/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": eid})
    assert resp.status_code == 200
    assert resp.json()["experiment"]["name"] == "exp-ajax"


def test_duplicate_name_is_refused(client):
    create(client, "dup")
    assert_error(client.post(f"{A}/experiments/create", json={"name": "dup"}), 400, "RESOURCE_ALREADY_EXISTS",
                 "dup")


@pytest.mark.parametrize("location", [
    "mlflow-artifacts:/team-a/project",
    "mlflow-artifacts:team-b/x.y_z",
])
def test_safe_artifact_location_is_accepted(client, location):
    eid = create(client, f"loc-{abs(hash(location))}", artifact_location=location)
    expected = "mlflow-artifacts:/" + location.split(":", 1)[1].lstrip("/")
    assert get(client, eid)["artifact_location"] == expected


@pytest.mark.parametrize("location", [
    "file:///etc",
    "/etc/passwd",
    "relative/dir",
    "./here",
    "s3://bucket/path",
    "mlflow-artifacts:/../../etc",
    "mlflow-artifacts:/a/../../b",
    "mlflow-artifacts:/a/./b",
    "mlflow-artifacts://otherhost/a",
    "mlflow-artifacts:/",
    "mlflow-artifacts:/3",
    "mlflow-artifacts:/3/runs",
    "mlflow-artifacts:/a%2F..%2Fb",
    "mlflow-artifacts:/a\\..\\b",
    "mlflow-artifacts:/a?x=1",
    "runs:/abc/artifacts",
    "http://example.com/a",
])
def test_unsafe_artifact_location_is_refused(client, location):
    resp = client.post(f"{A}/experiments/create", json={"name": "bad-loc", "artifact_location": location})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE", "artifact_location")
    assert client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "bad-loc"}).status_code == 404


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "'name'"),
    ({"name": ""}, "'name'"),
    ({"name": 5}, "'name'"),
    ({"name": "x" * 501}, "500"),
    ({"name": "ok", "tags": "notalist"}, "'tags'"),
    ({"name": "ok", "tags": [{"key": "bad key!", "value": "v"}]}, "Names may only contain"),
    ({"name": "ok", "tags": [{"key": "../up", "value": "v"}]}, "resolve"),
    ({"name": "ok", "tags": [{"key": "k" * 251, "value": "v"}]}, "250"),
    ({"name": "ok", "tags": [{"key": "k", "value": "v" * 20001}]}, "20000"),
    ({"name": "ok", "tags": [{"key": "k", "value": 3}]}, "tags[0].value"),
    ({"name": "ok", "artifact_location": 7}, "artifact_location"),
])
def test_create_validation(client, body, fragment):
    assert_error(client.post(f"{A}/experiments/create", json=body), 400, "INVALID_PARAMETER_VALUE", fragment)
    assert client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "ok"}).status_code == 404


def test_experiment_tag_value_at_the_limit_is_accepted(client):
    eid = create(client, "limit", tags=[{"key": "k" * 250, "value": "v" * 20000}])
    assert get(client, eid)["tags"] == [{"key": "k" * 250, "value": "v" * 20000}]


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'{"name": "a", "name": "b"}', b"\xff\xfe"])
def test_malformed_bodies_are_4xx(client, raw):
    resp = client.post(f"{A}/experiments/create", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500
    assert resp.json()["error_code"] in ("MALFORMED_REQUEST", "INVALID_PARAMETER_VALUE")


def test_get_unknown_and_invalid_ids(client):
    assert_error(client.get(f"{A}/experiments/get", params={"experiment_id": "987654"}), 404,
                 "RESOURCE_DOES_NOT_EXIST", "987654")
    assert_error(client.get(f"{A}/experiments/get", params={"experiment_id": "abc"}), 400,
                 "INVALID_PARAMETER_VALUE")
    for odd in ("9" * 40, "\u00b2", "\u0661", "-1", " 1", "1\n", "0x1"):
        assert_error(client.get(f"{A}/experiments/get", params={"experiment_id": odd}), 400,
                     "INVALID_PARAMETER_VALUE")
    assert_error(client.get(f"{A}/experiments/get"), 400, "INVALID_PARAMETER_VALUE", "experiment_id")
    assert_error(client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "nope"}), 404,
                 "RESOURCE_DOES_NOT_EXIST", "nope")
    assert_error(client.get(f"{A}/experiments/get-by-name"), 400, "INVALID_PARAMETER_VALUE")


def test_rename(client):
    eid = create(client, "old")
    create(client, "taken")
    before = get(client, eid)
    resp = client.post(f"{A}/experiments/update", json={"experiment_id": eid, "new_name": "new"})
    assert resp.status_code == 200
    assert resp.json() == {}
    after = get(client, eid)
    assert after["name"] == "new"
    assert after["last_update_time"] >= before["last_update_time"]
    assert client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "old"}).status_code == 404
    assert_error(client.post(f"{A}/experiments/update", json={"experiment_id": eid, "new_name": "taken"}), 400,
                 "RESOURCE_ALREADY_EXISTS")
    assert_error(client.post(f"{A}/experiments/update", json={"experiment_id": eid}), 400,
                 "INVALID_PARAMETER_VALUE", "new_name")
    assert_error(client.post(f"{A}/experiments/update", json={"experiment_id": "4242", "new_name": "z"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert get(client, eid)["name"] == "new"


def test_delete_and_restore_cascade_to_runs(client):
    eid = create(client, "to-delete")
    run = client.post(f"{A}/runs/create", json={"experiment_id": eid}).json()["run"]["info"]["run_id"]
    assert client.post(f"{A}/experiments/delete", json={"experiment_id": eid}).json() == {}
    exp = get(client, eid)
    assert exp["lifecycle_stage"] == "deleted"
    assert client.get(f"{A}/runs/get", params={"run_id": run}).json()["run"]["info"]["lifecycle_stage"] == "deleted"
    # Deleted experiments keep their name reserved, and refuse new runs, renames and tags.
    assert_error(client.post(f"{A}/experiments/create", json={"name": "to-delete"}), 400, "RESOURCE_ALREADY_EXISTS")
    assert client.get(f"{A}/experiments/get-by-name", params={"experiment_name": "to-delete"}).json()[
        "experiment"]["lifecycle_stage"] == "deleted"
    assert_error(client.post(f"{A}/runs/create", json={"experiment_id": eid}), 400, "INVALID_PARAMETER_VALUE",
                 "active")
    assert_error(client.post(f"{A}/experiments/update", json={"experiment_id": eid, "new_name": "x"}), 400,
                 "INVALID_STATE")
    assert_error(client.post(f"{A}/experiments/set-experiment-tag", json={"experiment_id": eid, "key": "a",
                                                                         "value": "b"}),
                 400, "INVALID_PARAMETER_VALUE", "active")
    assert_error(client.post(f"{A}/experiments/delete", json={"experiment_id": eid}), 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert client.post(f"{A}/experiments/restore", json={"experiment_id": eid}).status_code == 200
    assert get(client, eid)["lifecycle_stage"] == "active"
    assert client.get(f"{A}/runs/get", params={"run_id": run}).json()["run"]["info"]["lifecycle_stage"] == "active"
    assert_error(client.post(f"{A}/experiments/restore", json={"experiment_id": eid}), 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert_error(client.post(f"{A}/experiments/delete", json={"experiment_id": "999"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")


def test_set_and_delete_experiment_tag(client):
    eid = create(client, "tags")
    ok = client.post(f"{A}/experiments/set-experiment-tag", json={"experiment_id": eid, "key": "a", "value": "1"})
    assert ok.status_code == 200
    assert ok.json() == {}
    client.post(f"{A}/experiments/set-experiment-tag", json={"experiment_id": eid, "key": "a", "value": "2"})
    client.post(f"{A}/experiments/set-experiment-tag", json={"experiment_id": eid, "key": "b", "value": "3"})
    assert get(client, eid)["tags"] == [{"key": "a", "value": "2"}, {"key": "b", "value": "3"}]
    resp = client.post(f"{A}/experiments/delete-experiment-tag", json={"experiment_id": eid, "key": "a"})
    assert resp.status_code == 200
    assert resp.json() == {}
    assert get(client, eid)["tags"] == [{"key": "b", "value": "3"}]
    assert_error(client.post(f"{A}/experiments/delete-experiment-tag", json={"experiment_id": eid, "key": "a"}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(client.post(f"{A}/experiments/set-experiment-tag",
                             json={"experiment_id": eid, "key": "v", "value": "x" * 20001}),
                 400, "INVALID_PARAMETER_VALUE", "20000")
    assert_error(client.post(f"{A}/experiments/set-experiment-tag", json={"experiment_id": eid, "value": "x"}),
                 400, "INVALID_PARAMETER_VALUE", "'key'")
    assert_error(client.post(f"{A}/experiments/set-experiment-tag",
                             json={"experiment_id": "77777", "key": "a", "value": "x"}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert get(client, eid)["tags"] == [{"key": "b", "value": "3"}]


def test_get_method_is_required_for_reads(client):
    assert_error(client.post(f"{A}/experiments/get", json={"experiment_id": "0"}), 405, "BAD_REQUEST")
