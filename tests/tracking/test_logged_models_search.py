"""SearchLoggedModels: filters on attributes/metrics/params/tags, datasets, order_by, pages, scope."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.conftest import BACKENDS, TEST_ADMIN_TOKEN
from tests.tracking.mlflow3_fixtures import (
    engine_of,
    log_model_metric,
    make_experiment,
    make_run,
    serve_on_backend,
)
from tests.tracking.tracking_app import with_test_scope
from tracking.db.mlflow3_tables import logged_models
from tracking.scope import ResourceScope, VisibilityScope


@pytest.fixture(params=BACKENDS)
def client(request, app_factory):
    """An authenticated client of a fresh app on SQLite, then on PostgreSQL."""
    yield from serve_on_backend(request.param, app_factory)


A = "/api/2.0/mlflow"


@pytest.fixture
def world(client):
    """Two experiments; three models in the first with params, tags and metrics, one in the second."""
    exp1, exp2 = make_experiment(client, "alpha"), make_experiment(client, "beta")
    run = make_run(client, exp1)
    ids = {}
    for name, lr, team, acc in (("m1", "0.1", "a", 0.5), ("m2", "0.2", "b", 0.9), ("m3", "0.3", "a", 0.7)):
        resp = client.post(f"{A}/logged-models", json={
            "experiment_id": exp1, "name": name, "params": [{"key": "lr", "value": lr}],
            "tags": [{"key": "team", "value": team}]})
        ids[name] = resp.json()["model"]["info"]["model_id"]
        log_model_metric(client, run, ids[name], "acc", acc, dataset_name="eval", dataset_digest="d1")
    log_model_metric(client, run, ids["m1"], "acc", 0.99, timestamp=2000, dataset_name="train", dataset_digest="d2")
    other = client.post(f"{A}/logged-models", json={"experiment_id": exp2, "name": "m4"})
    ids["m4"] = other.json()["model"]["info"]["model_id"]
    client.patch(f"{A}/logged-models/{ids['m2']}", json={"status": "LOGGED_MODEL_READY"})
    # Distinct creation times, so the default order (newest first) does not depend on the clock.
    with engine_of(client).begin() as conn:
        for i, name in enumerate(("m1", "m2", "m3", "m4")):
            conn.execute(update(logged_models).where(logged_models.c.model_id == ids[name])
                         .values(creation_timestamp_ms=1000 * (i + 1)))
    return exp1, exp2, ids


def names(client, **body):
    resp = client.post(f"{A}/logged-models/search", json=body)
    assert resp.status_code == 200, resp.text
    return [m["info"]["name"] for m in resp.json().get("models", [])]


def test_default_order_is_newest_first(client, world):
    exp1, exp2, _ = world
    assert names(client, experiment_ids=[exp1]) == ["m3", "m2", "m1"]
    assert names(client, experiment_ids=[exp1, exp2]) == ["m4", "m3", "m2", "m1"]


@pytest.mark.parametrize(("filter_string", "expected"), [
    ("name = 'm2'", ["m2"]),
    ("attributes.name LIKE 'm%'", ["m1", "m2", "m3"]),
    ("name IN ('m1', 'm3')", ["m1", "m3"]),
    ("params.lr = '0.2'", ["m2"]),
    ("tags.team = 'a'", ["m1", "m3"]),
    ("tags.team = 'a' AND params.lr != '0.1'", ["m3"]),
    ("metrics.acc > 0.6", ["m1", "m2", "m3"]),
    ("metrics.acc >= 0.9", ["m1", "m2"]),
    ("status = 'READY'", ["m2"]),
    ("creation_timestamp_ms > 1000", ["m2", "m3"]),
])
def test_filters(client, world, filter_string, expected):
    exp1, _, _ = world
    assert sorted(names(client, experiment_ids=[exp1], filter=filter_string)) == expected


def test_datasets_restrict_metric_filters(client, world):
    exp1, _, _ = world
    assert sorted(names(client, experiment_ids=[exp1], filter="metrics.acc >= 0.9",
                        datasets=[{"dataset_name": "eval"}])) == ["m2"]
    assert names(client, experiment_ids=[exp1], datasets=[{"dataset_name": "train", "dataset_digest": "d2"}]) == ["m1"]


def test_order_by_metric_and_attribute(client, world):
    exp1, _, _ = world
    by_acc = names(client, experiment_ids=[exp1],
                   order_by=[{"field_name": "metrics.acc", "ascending": False, "dataset_name": "eval"}])
    assert by_acc == ["m2", "m3", "m1"]
    # Without a dataset the latest value counts: m1's 0.99 at timestamp 2000.
    assert names(client, experiment_ids=[exp1], order_by=[{"field_name": "metrics.acc", "ascending": False}])[0] == "m1"
    by_name = names(client, experiment_ids=[exp1], order_by=[{"field_name": "name", "ascending": True}])
    assert by_name == ["m1", "m2", "m3"]


def test_pagination_visits_every_model_once(client, world):
    exp1, exp2, _ = world
    seen, token = [], None
    for _ in range(10):
        body = {"experiment_ids": [exp1, exp2], "max_results": 1}
        if token:
            body["page_token"] = token
        data = client.post(f"{A}/logged-models/search", json=body).json()
        seen += [m["info"]["name"] for m in data["models"]]
        token = data.get("next_page_token")
        if not token:
            break
    assert seen == ["m4", "m3", "m2", "m1"]


def test_token_from_another_search_is_refused(client, world):
    exp1, exp2, _ = world
    token = client.post(f"{A}/logged-models/search",
                        json={"experiment_ids": [exp1], "max_results": 1}).json()["next_page_token"]
    resp = client.post(f"{A}/logged-models/search", json={"experiment_ids": [exp2], "page_token": token})
    assert resp.status_code == 400


def test_deleted_models_are_not_found(client, world):
    exp1, _, ids = world
    client.delete(f"{A}/logged-models/{ids['m2']}")
    assert names(client, experiment_ids=[exp1]) == ["m3", "m1"]


@pytest.mark.parametrize("body", [
    {},
    {"experiment_ids": []},
    {"experiment_ids": ["x"]},
    {"experiment_ids": ["EXP"], "filter": "name = "},
    {"experiment_ids": ["EXP"], "filter": "name = 'a' OR name = 'b'"},
    {"experiment_ids": ["EXP"], "filter": "metrics.acc > 'high'"},
    {"experiment_ids": ["EXP"], "filter": "bogus = 'x'"},
    {"experiment_ids": ["EXP"], "filter": "runs.x = 'x'"},
    {"experiment_ids": ["EXP"], "order_by": [{"field_name": "params.lr"}]},
    {"experiment_ids": ["EXP"], "order_by": [{"field_name": "nope"}]},
    {"experiment_ids": ["EXP"], "max_results": 0},
    {"experiment_ids": ["EXP"], "page_token": "garbage"},
    {"experiment_ids": ["EXP"], "datasets": [{"dataset_digest": "x"}]},
])
def test_bad_searches_are_400(client, world, body):
    exp1, _, _ = world
    body = {k: ([exp1] if v == ["EXP"] else v) for k, v in body.items()}
    resp = client.post(f"{A}/logged-models/search", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_visibility_scope_applies_inside_the_query(app_factory):
    from starlette.testclient import TestClient

    app = app_factory()
    hidden = VisibilityScope(experiments=ResourceScope(unrestricted=False, name_patterns=("alpha",)))

    with_test_scope(app, lambda request: hidden if request.headers.get("x-test-scope") == "alpha" else None)

    with TestClient(app, base_url="http://127.0.0.1:5000",
                    headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as client:
        exp1, exp2 = make_experiment(client, "alpha"), make_experiment(client, "beta")
        for exp in (exp1, exp2, exp2):
            client.post(f"{A}/logged-models", json={"experiment_id": exp})
        resp = client.post(f"{A}/logged-models/search", json={"experiment_ids": [exp1, exp2], "max_results": 1},
                           headers={"x-test-scope": "alpha"})
        data = resp.json()
        assert [m["info"]["experiment_id"] for m in data["models"]] == [exp1]
        # Only one model is visible, so there is no further page.
        assert "next_page_token" not in data
