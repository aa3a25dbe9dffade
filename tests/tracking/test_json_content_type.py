"""JSON bodies must be declared application/json (as MLflow's server requires): the CSRF shape is refused."""

from __future__ import annotations

import json
import uuid

import pytest

A = "/api/2.0/mlflow"


def _experiment_named(client, name: str) -> int:
    found = client.get(f"{A}/experiments/get-by-name", params={"experiment_name": name})
    return found.status_code


@pytest.mark.parametrize(("content_type", "message"), [
    ("text/plain", "Bad Request. Content-Type must be one of ['application/json'], got 'text/plain'."),
    ("text/plain;charset=UTF-8", "Bad Request. Content-Type must be one of ['application/json'], got 'text/plain'."),
    ("application/x-www-form-urlencoded",
     "Bad Request. Content-Type must be one of ['application/json'], got 'application/x-www-form-urlencoded'."),
    ("multipart/form-data; boundary=x",
     "Bad Request. Content-Type must be one of ['application/json'], got 'multipart/form-data'."),
    (None, "Bad Request. Content-Type header is missing."),
])
def test_a_json_write_without_the_json_type_is_refused(client, content_type, message):
    name = f"csrf-{uuid.uuid4().hex[:8]}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(f"{A}/experiments/create", content=json.dumps({"name": name}), headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": message}
    assert _experiment_named(client, name) == 404  # nothing was written


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_is_accepted_with_its_type(client, content_type):
    name = f"ok-{uuid.uuid4().hex[:8]}"
    response = client.post(f"{A}/experiments/create", content=json.dumps({"name": name}),
                           headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert _experiment_named(client, name) == 200


def test_delete_with_a_json_body_as_the_mlflow_client_sends_it(client):
    name = f"model-{uuid.uuid4().hex[:8]}"
    assert client.post(f"{A}/registered-models/create", json={"name": name}).status_code == 200
    deleted = client.request("DELETE", f"{A}/registered-models/delete", json={"name": name})
    assert deleted.status_code == 200, deleted.text


def test_a_request_without_a_body_needs_no_type(client):
    response = client.post(f"{A}/experiments/search", content=b"")
    assert response.status_code == 200, response.text
