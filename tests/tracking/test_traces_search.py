"""SearchTracesV3: filters on attributes, tags and metadata; order_by; pages; visibility scope."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import BACKENDS, TEST_ADMIN_TOKEN
from tests.tracking.mlflow3_fixtures import make_experiment, serve_on_backend
from tests.tracking.otlp_builders import trace_info_body
from tests.tracking.tracking_app import with_test_scope
from tracking.scope import ResourceScope, VisibilityScope


@pytest.fixture(params=BACKENDS)
def client(request, app_factory):
    """An authenticated client of a fresh app on SQLite, then on PostgreSQL."""
    yield from serve_on_backend(request.param, app_factory)


B = "/api/3.0/mlflow"


def location(exp_id: str) -> dict:
    return {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp_id}}


@pytest.fixture
def world(client):
    """Traces t0..t3 in one experiment (one per day, durations 10..40 ms) and t4 in another."""
    exp1, exp2 = make_experiment(client, "alpha"), make_experiment(client, "beta")
    specs = [("t0", exp1, "OK", "a", "run1"), ("t1", exp1, "ERROR", "b", "run1"),
             ("t2", exp1, "OK", "a", "run2"), ("t3", exp1, "IN_PROGRESS", "c", None),
             ("t4", exp2, "OK", "a", None)]
    for i, (name, exp, state, team, run) in enumerate(specs):
        meta = {"mlflow.sourceRun": run} if run else {}
        body = trace_info_body(f"tr-{i:032x}", exp, state=state, request_time=f"2024-01-0{i + 1}T00:00:00Z",
                               execution_duration=f"0.0{i + 1}0s", trace_metadata=meta,
                               tags={"mlflow.traceName": name, "team": team})
        assert client.post(f"{B}/traces", json=body).status_code == 200
    return exp1, exp2


def names(client, exp_ids, **body):
    resp = client.post(f"{B}/traces/search", json={"locations": [location(e) for e in exp_ids], **body})
    assert resp.status_code == 200, resp.text
    return [t["tags"]["mlflow.traceName"] for t in resp.json().get("traces", [])]


def test_default_order_is_newest_first(client, world):
    exp1, exp2 = world
    assert names(client, [exp1]) == ["t3", "t2", "t1", "t0"]
    assert names(client, [exp1, exp2]) == ["t4", "t3", "t2", "t1", "t0"]


@pytest.mark.parametrize(("filter_string", "expected"), [
    ("attributes.status = 'OK'", ["t0", "t2"]),
    ("trace.status != 'OK'", ["t1", "t3"]),
    ("status IN ('ERROR', 'IN_PROGRESS')", ["t1", "t3"]),
    ("tags.team = 'a'", ["t0", "t2"]),
    ("tag.team LIKE '%b%'", ["t1"]),
    ("tags.`team` ILIKE 'C'", ["t3"]),
    ("name = 't2'", ["t2"]),
    ("attributes.run_id = 'run1'", ["t0", "t1"]),
    ("request_metadata.`mlflow.sourceRun` = 'run2'", ["t2"]),
    ("metadata.`mlflow.sourceRun` IS NULL", ["t3"]),
    ("timestamp_ms > 1704153600000", ["t2", "t3"]),
    ("execution_time_ms >= 30", ["t2", "t3"]),
    ("trace_id = 'tr-00000000000000000000000000000001'", ["t1"]),
    ("tags.team = 'a' AND status = 'OK' AND timestamp_ms < 1704153600000", ["t0"]),
])
def test_filters(client, world, filter_string, expected):
    exp1, _ = world
    assert sorted(names(client, [exp1], filter=filter_string)) == expected


def test_order_by_attributes_and_tags(client, world):
    exp1, _ = world
    assert names(client, [exp1], order_by=["timestamp_ms ASC"]) == ["t0", "t1", "t2", "t3"]
    assert names(client, [exp1], order_by=["execution_time_ms DESC"]) == ["t3", "t2", "t1", "t0"]
    assert names(client, [exp1], order_by=["tags.team DESC", "timestamp_ms ASC"]) == ["t3", "t1", "t0", "t2"]


def test_pages_cover_everything_once(client, world):
    exp1, exp2 = world
    seen, token = [], None
    for _ in range(10):
        body = {"locations": [location(exp1), location(exp2)], "max_results": 2}
        if token:
            body["page_token"] = token
        data = client.post(f"{B}/traces/search", json=body).json()
        seen += [t["trace_id"] for t in data["traces"]]
        token = data.get("next_page_token")
        if not token:
            break
    assert seen == [f"tr-{i:032x}" for i in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize("body", [
    {"locations": []},
    {"locations": [{"type": "INFERENCE_TABLE", "inference_table": {"full_table_name": "a.b.c"}}]},
    {"filter": "status = "},
    {"filter": "status = 'OK' OR status = 'ERROR'"},
    {"filter": "span.name = 'x'"},
    {"filter": "feedback.quality = 'good'"},
    {"filter": "nope = 'x'"},
    {"filter": "timestamp_ms > 'yesterday'"},
    {"order_by": ["bogus DESC"]},
    {"order_by": ["timestamp_ms SIDEWAYS"]},
    {"max_results": 501},
    {"page_token": "not-a-token"},
])
def test_bad_searches_are_400(client, world, body):
    exp1, _ = world
    body = {"locations": [location(exp1)], **body}
    resp = client.post(f"{B}/traces/search", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_visibility_scope_filters_search_and_batch_get(app_factory):
    app = app_factory()
    only_alpha = VisibilityScope(experiments=ResourceScope(unrestricted=False, name_patterns=("alpha",)))

    with_test_scope(app, lambda request: only_alpha if request.headers.get("x-test-scope") == "alpha" else None)

    with TestClient(app, base_url="http://127.0.0.1:5000",
                    headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as client:
        exp1, exp2 = make_experiment(client, "alpha"), make_experiment(client, "beta")
        for i, exp in enumerate((exp1, exp2, exp2)):
            client.post(f"{B}/traces", json=trace_info_body(f"tr-{i:032x}", exp))
        headers = {"x-test-scope": "alpha"}
        data = client.post(f"{B}/traces/search", headers=headers, json={
            "locations": [location(exp1), location(exp2)], "max_results": 1}).json()
        assert [t["trace_id"] for t in data["traces"]] == [f"tr-{0:032x}"]
        assert "next_page_token" not in data
        batch = client.get(f"{B}/traces/batchGet", headers=headers,
                           params=[("trace_ids", f"tr-{i:032x}") for i in range(3)]).json()
        assert [t["trace_info"]["trace_id"] for t in batch["traces"]] == [f"tr-{0:032x}"]
