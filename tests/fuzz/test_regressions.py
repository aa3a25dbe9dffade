"""Regressions found by fuzzing: each input once answered 500; now it is MLflow's 400 or 404.

``str.isdigit()`` is true for '¹' and '²3' (superscripts), which ``int()`` refuses: every check written
as ``value.isdigit()`` followed by ``int(value)`` crashed on them, first of all the authorizer's
experiment lookup for non-admins. A filter with more digits than ``int()`` converts crashed too.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

A = "/api/2.0/mlflow"
NOT_ASCII_DIGITS = ["¹", "²3", "٣"]  # superscript one, superscript two + three, Arabic-Indic three


@pytest.fixture
def bob(client: TestClient):
    """A non-admin with an experiment, a run and a logged model of his own (the authorizer runs for him)."""
    assert client.post(f"{A}/users/create", json={"username": "bob", "password": "Kx7-pass-0123456789"}).is_success
    token = client.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1,
                                                         "username": "bob"}).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    exp = client.post(f"{A}/experiments/create", json={"name": "bob-exp"}).json()["experiment_id"]
    run = client.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    model = client.post(f"{A}/logged-models", json={"experiment_id": exp}).json()["model"]["info"]["model_id"]
    return client, exp, run, model


def _requests(v: str, exp: str, run: str, model: str):
    return [
        ("GET", f"{A}/experiments/get", {"experiment_id": v}),
        ("POST", f"{A}/runs/create", {"experiment_id": v}),
        ("POST", f"{A}/experiments/update", {"experiment_id": v, "new_name": "x"}),
        ("POST", f"{A}/experiments/permissions/create", {"experiment_id": v, "username": "bob",
                                                          "permission": "READ"}),
        ("GET", f"{A}/experiments/permissions/get", {"experiment_id": v, "username": "bob"}),
        ("POST", f"{A}/logged-models", {"experiment_id": v}),
        ("PATCH", f"{A}/logged-models/{model}", {"model_id": model, "status": v}),
        ("POST", f"{A}/runs/outputs", {"run_id": run, "models": [{"model_id": model, "step": v}]}),
        ("POST", f"{A}/experiments/search", {"filter": f"experiment_id = '{v}'"}),
        ("POST", f"{A}/experiments/search", {"filter": f"creation_time > {v}"}),
        ("POST", f"{A}/runs/search", {"experiment_ids": [exp], "filter": f"metrics.m > {v}"}),
        ("POST", f"{A}/runs/search", {"experiment_ids": [exp], "filter": "metrics.m > " + "9" * 5000}),
        ("GET", f"/experiments/{v}", None),
    ]


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS)
def test_non_ascii_digits_and_huge_numbers_are_refused_not_crashed_on(bob, value):
    client, exp, run, model = bob
    for method, path, body in _requests(value, exp, run, model):
        response = client.request(method, path, json=body if method != "GET" else None,
                                  params=body if method == "GET" else None)
        assert response.status_code in (400, 404), (method, path, body, response.status_code, response.text[:200])
        if path.startswith("/api/"):
            assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    # Nothing was created from those ids.
    listed = client.post(f"{A}/experiments/search", json={}).json()["experiments"]
    assert [e["name"] for e in listed] == ["bob-exp"]


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS)
def test_web_ui_number_fields_refuse_non_ascii_digits(client: TestClient, value):
    from gateway.ui.account import _days
    from tracking.errors import MlflowError

    page = client.get("/admin/audit", params={"before": value})  # the admin's audit log, paged by id
    assert page.status_code == 200, page.text[:300]
    with pytest.raises(MlflowError, match="whole number"):
        _days(value)  # a token's lifetime in days, from the account page's form
