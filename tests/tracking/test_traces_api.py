"""Trace infos over REST: start (before or after OTLP), get, batchGet, tags, delete-traces, errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BACKENDS
from tests.tracking.mlflow3_fixtures import (
    experiment_count,
    make_experiment,
    serve_on_backend,
)
from tests.tracking.otlp_builders import post_otlp, trace_info_body, two_span_trace
from tracking.db.mlflow3_tables import trace_info


@pytest.fixture(params=BACKENDS)
def client(request, app_factory):
    """An authenticated client of a fresh app on SQLite, then on PostgreSQL."""
    yield from serve_on_backend(request.param, app_factory)


A = "/api/2.0/mlflow"
B = "/api/3.0/mlflow"


def start(client, trace_id, exp_id, **extra):
    resp = client.post(f"{B}/traces", json=trace_info_body(trace_id, exp_id, **extra))
    assert resp.status_code == 200, resp.text
    return resp.json()["trace"]["trace_info"]


def test_start_trace_without_spans_points_at_artifacts(client):
    exp_id = make_experiment(client)
    info = start(client, "tr-" + "ab" * 16, exp_id)
    assert info["trace_id"] == "tr-" + "ab" * 16
    assert info["request_time"] == "2023-11-14T22:13:20Z"
    assert info["execution_duration"] == "0.050s"
    assert info["state"] == "OK"
    assert info["tags"]["mlflow.user"] == "alice"
    assert info["tags"]["mlflow.artifactLocation"] == f"mlflow-artifacts:/{exp_id}/traces/{info['trace_id']}/artifacts"
    # No spans were stored, so the client must upload traces.json itself.
    assert "mlflow.trace.spansLocation" not in info["tags"]
    assert info["trace_metadata"]["mlflow.trace_schema.version"] == "3"
    got = client.get(f"{B}/traces/{info['trace_id']}", params={"trace_id": info["trace_id"]})
    assert got.json()["trace"]["trace_info"] == info


@pytest.mark.parametrize("otlp_first", [True, False])
def test_start_trace_and_otlp_merge_in_either_order(client, otlp_first):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    trace_id = "tr-" + tid.hex()
    if otlp_first:
        assert post_otlp(client, request, exp_id).status_code == 200
    info = start(client, trace_id, exp_id, state="ERROR", tags={"mlflow.traceName": "parent", "k": "v",
                                                                "mlflow.trace.spansLocation": "FORGED"})
    if not otlp_first:
        assert post_otlp(client, request, exp_id).status_code == 200
    if otlp_first:
        # The client skips the artifact upload when the server already holds the spans.
        assert info["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    trace = client.get(f"{B}/traces/get", params={"trace_id": trace_id}).json()["trace"]
    assert trace["trace_info"]["state"] == "ERROR"  # the client's summary wins
    assert trace["trace_info"]["tags"]["k"] == "v"
    assert trace["trace_info"]["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert [s["name"] for s in trace["spans"]] == ["parent", "child"]


def test_get_trace_waits_for_all_spans_unless_partial(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    del request.resource_spans[0].scope_spans[0].spans[1]
    trace_id = "tr-" + tid.hex()
    post_otlp(client, request, exp_id)
    start(client, trace_id, exp_id)  # says num_spans = 2
    incomplete = client.get(f"{B}/traces/get", params={"trace_id": trace_id})
    assert incomplete.status_code == 404
    assert "not fully exported" in incomplete.json()["message"]
    partial = client.get(f"{B}/traces/get", params={"trace_id": trace_id, "allow_partial": "true"})
    assert [s["name"] for s in partial.json()["trace"]["spans"]] == ["parent"]


def test_batch_get_returns_known_traces_with_spans(client):
    exp_id = make_experiment(client)
    ids = []
    for _ in range(2):
        tid, request = two_span_trace()
        post_otlp(client, request, exp_id)
        ids.append("tr-" + tid.hex())
    resp = client.get(f"{B}/traces/batchGet", params=[("trace_ids", ids[0]), ("trace_ids", ids[1]),
                                                      ("trace_ids", "tr-" + "00" * 16)])
    assert resp.status_code == 200, resp.text
    traces = resp.json()["traces"]
    assert [t["trace_info"]["trace_id"] for t in traces] == ids
    assert all(len(t["spans"]) == 2 for t in traces)


def test_tags_v2_and_v3_paths(client):
    exp_id = make_experiment(client)
    trace_id = start(client, "tr-" + "cd" * 16, exp_id)["trace_id"]
    assert client.patch(f"{A}/traces/{trace_id}/tags", json={"key": "color", "value": "red"}).status_code == 200
    assert client.patch(f"{B}/traces/{trace_id}/tags", json={"key": "size", "value": "L"}).status_code == 200
    tags = client.get(f"{B}/traces/{trace_id}").json()["trace"]["trace_info"]["tags"]
    assert (tags["color"], tags["size"]) == ("red", "L")
    assert client.request("DELETE", f"{A}/traces/{trace_id}/tags", json={"key": "color"}).status_code == 200
    assert client.delete(f"{B}/traces/{trace_id}/tags", params={"key": "size"}).status_code == 200
    tags = client.get(f"{B}/traces/{trace_id}").json()["trace"]["trace_info"]["tags"]
    assert "color" not in tags
    assert "size" not in tags
    missing = client.delete(f"{B}/traces/{trace_id}/tags", params={"key": "size"})
    assert missing.status_code == 404
    forged = client.patch(f"{A}/traces/{trace_id}/tags",
                          json={"key": "mlflow.trace.spansLocation", "value": "TRACKING_STORE"})
    assert forged.status_code == 400
    unknown = client.patch(f"{A}/traces/tr-{'00' * 16}/tags", json={"key": "a", "value": "b"})
    assert unknown.status_code == 404


def test_delete_traces_by_ids_and_by_time(client):
    exp_id = make_experiment(client)
    old = [start(client, f"tr-{i:032x}", exp_id, request_time=f"2020-01-0{i + 1}T00:00:00Z")["trace_id"]
           for i in range(3)]
    resp = client.post(f"{A}/traces/delete-traces", json={"experiment_id": exp_id, "request_ids": [old[0]]})
    assert resp.json() == {"traces_deleted": 1}
    assert client.get(f"{B}/traces/{old[0]}").status_code == 404
    resp = client.post(f"{B}/traces/delete-traces", json={
        "experiment_id": exp_id, "max_timestamp_millis": 1_600_000_000_000, "max_traces": 1})
    assert resp.json() == {"traces_deleted": 1}
    assert client.get(f"{B}/traces/{old[1]}").status_code == 404
    assert client.get(f"{B}/traces/{old[2]}").status_code == 200


@pytest.mark.parametrize("mutate", [
    lambda b: b["trace"].pop("trace_info"),
    lambda b: b["trace"]["trace_info"].pop("trace_location"),
    lambda b: b["trace"]["trace_info"].update(trace_id="../../etc"),
    lambda b: b["trace"]["trace_info"].update(state="DONE"),
    lambda b: b["trace"]["trace_info"].update(request_time="yesterday"),
    lambda b: b["trace"]["trace_info"].update(execution_duration="-1s"),
    lambda b: b["trace"]["trace_info"].update(tags={"k" * 251: "v"}),
    lambda b: b["trace"]["trace_info"].update(tags={"k": 5}),
    lambda b: b["trace"]["trace_info"]["trace_location"]["mlflow_experiment"].update(experiment_id="424242"),
    lambda b: b["trace"]["trace_info"].update(assessments=[{"assessment_name": "x"}]),
])
def test_start_trace_refuses_bad_input_and_writes_nothing(client, mutate):
    exp_id = make_experiment(client)
    body = trace_info_body("tr-" + "ef" * 16, exp_id)
    mutate(body)
    resp = client.post(f"{B}/traces", json=body)
    assert resp.status_code in (400, 404), resp.text
    assert resp.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert experiment_count(client, trace_info) == 0


@pytest.mark.parametrize("body", [
    {"experiment_id": "EXP"},
    {"experiment_id": "EXP", "request_ids": ["tr-1"], "max_timestamp_millis": 5},
    {"experiment_id": "EXP", "max_timestamp_millis": 5, "max_traces": 0},
    {"max_timestamp_millis": 5},
])
def test_delete_traces_needs_a_clear_selection(client, body):
    exp_id = make_experiment(client)
    start(client, "tr-" + "12" * 16, exp_id)
    body = {k: (exp_id if v == "EXP" else v) for k, v in body.items()}
    resp = client.post(f"{A}/traces/delete-traces", json=body)
    assert resp.status_code == 400
    assert experiment_count(client, trace_info) == 1


def test_application_metadata_keys_are_kept_as_given(client):
    exp_id = make_experiment(client)
    meta = {"user question?": "why", "mlflow.trace.sizeStats": "{}"}
    info = start(client, "tr-" + "bc" * 16, exp_id, trace_metadata=meta, tags={"odd key!": "x" * 9000})
    assert info["trace_metadata"] == meta
    assert info["tags"]["odd key!"] == "x" * 8000  # over-long values are cut as MLflow cuts them


def test_unknown_trace_is_404(client):
    resp = client.get(f"{B}/traces/get", params={"trace_id": "tr-" + "00" * 16})
    assert resp.status_code == 404
    assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert client.get(f"{B}/traces/tr-{'00' * 16}").status_code == 404


def test_size_stats_garbage_does_not_break_reads(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    post_otlp(client, request, exp_id)
    meta = {"mlflow.trace.sizeStats": "not json"}
    start(client, "tr-" + tid.hex(), exp_id, trace_metadata=meta)
    resp = client.get(f"{B}/traces/get", params={"trace_id": "tr-" + tid.hex()})
    assert resp.status_code == 200
    assert json.loads(json.dumps(resp.json()))["trace"]["trace_info"]["trace_metadata"] == meta


def test_experiment_lookup_for_authorization(client):
    from tracking.store.traces import get_trace_experiment_id

    exp_id = make_experiment(client)
    trace_id = start(client, "tr-" + "34" * 16, exp_id)["trace_id"]
    with client.app.state.tracking.engine.connect() as conn:
        assert get_trace_experiment_id(conn, trace_id) == exp_id
        assert get_trace_experiment_id(conn, "tr-" + "00" * 16) is None


def test_batch_get_infos_and_experiment_filter(client):
    exp1, exp2 = make_experiment(client), make_experiment(client)
    a = start(client, "tr-" + "56" * 16, exp1)["trace_id"]
    b = start(client, "tr-" + "78" * 16, exp2)["trace_id"]
    infos = client.get(f"{B}/traces/batchGetInfos", params=[("trace_ids", a), ("trace_ids", b)]).json()
    assert [i["trace_id"] for i in infos["trace_infos"]] == [a, b]
    only = client.get(f"{B}/traces/batchGet", params=[("trace_ids", a), ("trace_ids", b), ("experiment_ids", exp2)])
    assert [t["trace_info"]["trace_id"] for t in only.json()["traces"]] == [b]
    assert client.get(f"{B}/traces/batchGet").status_code == 400


def test_get_trace_reads_spans_the_client_uploaded_as_traces_json(client):
    exp_id = make_experiment(client)
    trace_id = "tr-" + "9a" * 16
    info = start(client, trace_id, exp_id)
    assert info["tags"]["mlflow.artifactLocation"] == f"mlflow-artifacts:/{exp_id}/traces/{trace_id}/artifacts"
    # The shape MLflow's client uploads: OTLP-like spans with JSON-encoded attribute values.
    document = {"spans": [
        {"trace_id": "mpqampqampqampqampqamg==", "span_id": "AQIDBAUGBwg=", "parent_span_id": None,
         "name": "root", "start_time_unix_nano": 100, "end_time_unix_nano": 300,
         "status": {"code": "STATUS_CODE_OK", "message": ""}, "events": [],
         "attributes": {"mlflow.spanInputs": json.dumps({"q": "hi"}), "mlflow.spanOutputs": json.dumps(42),
                        "mlflow.spanType": json.dumps("CHAIN")}},
        {"trace_id": "mpqampqampqampqampqamg==", "span_id": "CQoLDA0ODxA=", "parent_span_id": "AQIDBAUGBwg=",
         "name": "child", "start_time_unix_nano": 150, "end_time_unix_nano": 200,
         "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
         "events": [{"name": "exception", "time_unix_nano": 180, "attributes": {"k": json.dumps([1, True])}}],
         "attributes": {"mlflow.spanInputs": "not json"}},
    ]}
    put = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/traces/{trace_id}/artifacts/traces.json",
                     content=json.dumps(document))
    assert put.status_code == 200, put.text
    spans = client.get(f"{B}/traces/get", params={"trace_id": trace_id}).json()["trace"]["spans"]
    assert [s["name"] for s in spans] == ["root", "child"]
    root, child = spans
    assert root["attributes"] == [
        {"key": "mlflow.spanInputs", "value": {"kvlist_value": {"values": [
            {"key": "q", "value": {"string_value": "hi"}}]}}},
        {"key": "mlflow.spanOutputs", "value": {"int_value": "42"}},
        {"key": "mlflow.spanType", "value": {"string_value": "CHAIN"}},
    ]
    assert root["start_time_unix_nano"] == "100"
    assert child["parent_span_id"] == root["span_id"]
    assert child["status"] == {"code": "STATUS_CODE_ERROR", "message": "boom"}
    assert child["events"][0]["attributes"] == [
        {"key": "k", "value": {"array_value": {"values": [{"int_value": "1"}, {"bool_value": True}]}}}]
    assert child["attributes"] == [{"key": "mlflow.spanInputs", "value": {"string_value": "not json"}}]
    batch = client.get(f"{B}/traces/batchGet", params={"trace_ids": trace_id}).json()["traces"]
    assert batch[0]["spans"] == spans


def test_assessments_inside_a_finished_trace_keep_their_ids_and_survive_a_resend(client):
    exp_id = make_experiment(client)
    assessment = {"assessment_id": "a-" + "1" * 32, "assessment_name": "ok", "source": {"source_type": "CODE"},
                  "feedback": {"value": True}}
    first = start(client, "tr-" + "de" * 16, exp_id, assessments=[assessment])
    again = start(client, "tr-" + "de" * 16, exp_id, assessments=[assessment])
    assert [a["assessment_id"] for a in first["assessments"]] == ["a-" + "1" * 32]
    assert again["assessments"] == first["assessments"]
