"""OTLP/HTTP ingestion at /v1/traces: protobuf and JSON, spans stored whole, bad payloads refused whole."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import BACKENDS
from tests.tracking.mlflow3_fixtures import (
    experiment_count,
    make_experiment,
    make_run,
    serve_on_backend,
)
from tests.tracking.otlp_builders import post_otlp, two_span_trace
from tracking.db.mlflow3_tables import spans, trace_info, trace_tags


@pytest.fixture(params=BACKENDS)
def client(request, app_factory):
    """An authenticated client of a fresh app on SQLite, then on PostgreSQL."""
    yield from serve_on_backend(request.param, app_factory)


B = "/api/3.0/mlflow"


def attributes(span: dict) -> dict:
    return {a["key"]: a["value"] for a in span["attributes"]}


def test_protobuf_export_creates_trace_with_spans(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    resp = post_otlp(client, request, exp_id)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(resp.content)

    trace_id = "tr-" + tid.hex()
    got = client.get(f"{B}/traces/get", params={"trace_id": trace_id})
    assert got.status_code == 200, got.text
    trace = got.json()["trace"]
    info = trace["trace_info"]
    assert info["trace_id"] == trace_id
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == exp_id
    assert info["state"] == "OK"
    assert info["execution_duration"] == "0.050s"
    assert info["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert info["tags"]["mlflow.traceName"] == "parent"
    assert info["tags"]["mlflow.artifactLocation"] == f"mlflow-artifacts:/{exp_id}/traces/{trace_id}/artifacts"
    assert info["request_preview"] == '{"x": 1}'
    assert info["response_preview"] == "2"
    assert [s["name"] for s in trace["spans"]] == ["parent", "child"]
    root, child = trace["spans"]
    assert base64.b64decode(root["trace_id"]) == tid
    assert child["parent_span_id"] == root["span_id"]
    assert attributes(root)["mlflow.spanInputs"] == {
        "kvlist_value": {"values": [{"key": "x", "value": {"int_value": "1"}}]}}
    assert attributes(child)["mlflow.spanOutputs"] == {"string_value": "ok"}
    assert root["status"]["code"] == "STATUS_CODE_OK"


def test_json_export_with_hex_ids(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    document = MessageToDict(request)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
    resp = client.post("/v1/traces", content=json.dumps(document),
                       headers={"content-type": "application/json; charset=utf-8", "x-mlflow-experiment-id": exp_id})
    assert resp.status_code == 200, resp.text
    got = client.get(f"{B}/traces/get", params={"trace_id": "tr-" + tid.hex()}).json()["trace"]
    assert sorted(s["name"] for s in got["spans"]) == ["child", "parent"]


def test_protobuf_canonical_json_with_base64_ids(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    document = MessageToDict(request, preserving_proto_field_name=True)
    resp = client.post("/v1/traces", content=json.dumps(document),
                       headers={"content-type": "application/json", "x-mlflow-experiment-id": exp_id})
    assert resp.status_code == 200, resp.text
    got = client.get(f"{B}/traces/get", params={"trace_id": "tr-" + tid.hex()}).json()["trace"]
    assert [s["name"] for s in got["spans"]] == ["parent", "child"]


def test_gzip_body_is_accepted(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    resp = client.post("/v1/traces", content=gzip.compress(request.SerializeToString()),
                       headers={"content-type": "application/x-protobuf", "content-encoding": "gzip",
                                "x-mlflow-experiment-id": exp_id})
    assert resp.status_code == 200, resp.text
    assert client.get(f"{B}/traces/{'tr-' + tid.hex()}").status_code == 200


def test_resent_spans_replace_and_do_not_duplicate(client):
    exp_id = make_experiment(client)
    tid, request = two_span_trace()
    assert post_otlp(client, request, exp_id).status_code == 200
    assert post_otlp(client, request, exp_id).status_code == 200
    got = client.get(f"{B}/traces/get", params={"trace_id": "tr-" + tid.hex()}).json()["trace"]
    assert len(got["spans"]) == 2


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({"content-type": "application/x-protobuf", "x-mlflow-experiment-id": "EXP"}, "TRUNCATED", 400,
     "INVALID_PARAMETER_VALUE"),
    ({"content-type": "text/plain", "x-mlflow-experiment-id": "EXP"}, "VALID", 415, "BAD_REQUEST"),
    ({"x-mlflow-experiment-id": "EXP"}, "VALID", 415, "BAD_REQUEST"),
    ({"content-type": "application/x-protobuf", "x-mlflow-experiment-id": "424242"}, "VALID", 404,
     "RESOURCE_DOES_NOT_EXIST"),
    ({"content-type": "application/x-protobuf", "x-mlflow-experiment-id": "abc"}, "VALID", 400,
     "INVALID_PARAMETER_VALUE"),
    ({"content-type": "application/x-protobuf"}, "VALID", 400, "INVALID_PARAMETER_VALUE"),
    ({"content-type": "application/json", "x-mlflow-experiment-id": "EXP"}, b'{"resourceSpans": 5}', 400,
     "INVALID_PARAMETER_VALUE"),
    ({"content-type": "application/json", "x-mlflow-experiment-id": "EXP"}, b"{not json", 400,
     "MALFORMED_REQUEST"),
    ({"content-type": "application/json", "x-mlflow-experiment-id": "EXP"},
     b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00"}]}]}]}', 400,
     "INVALID_PARAMETER_VALUE"),
    ({"content-type": "application/x-protobuf", "content-encoding": "gzip", "x-mlflow-experiment-id": "EXP"},
     "VALID", 400, "INVALID_PARAMETER_VALUE"),
    ({"content-type": "application/x-protobuf", "content-encoding": "br", "x-mlflow-experiment-id": "EXP"},
     "VALID", 415, "BAD_REQUEST"),
])
def test_bad_payloads_are_refused_and_store_nothing(client, headers, body, status, code):
    exp_id = make_experiment(client)
    _, request = two_span_trace()
    raw = request.SerializeToString()
    content = {"VALID": raw, "TRUNCATED": raw[:-7]}.get(body, body)
    headers = {k: (exp_id if v == "EXP" else v) for k, v in headers.items()}
    resp = client.post("/v1/traces", content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error_code"] == code
    assert resp.json()["message"]
    for table in (trace_info, spans, trace_tags):
        assert experiment_count(client, table) == 0


def test_bad_span_ids_refuse_the_whole_request(client):
    exp_id = make_experiment(client)
    _, request = two_span_trace()
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
    resp = post_otlp(client, request, exp_id)
    assert resp.status_code == 400
    assert experiment_count(client, trace_info) == 0
    assert experiment_count(client, spans) == 0


def test_spans_cannot_join_a_trace_of_another_experiment(client):
    exp1, exp2 = make_experiment(client), make_experiment(client)
    tid, request = two_span_trace()
    assert post_otlp(client, request, exp1).status_code == 200
    resp = post_otlp(client, request, exp2)
    assert resp.status_code == 400
    info = client.get(f"{B}/traces/{'tr-' + tid.hex()}").json()["trace"]["trace_info"]
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == exp1


def test_deleted_experiment_is_refused(client):
    exp_id = make_experiment(client, deleted=True)
    _, request = two_span_trace()
    resp = post_otlp(client, request, exp_id)
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_STATE"


def test_run_header_links_traces_to_a_run_of_the_same_experiment(client):
    exp_id, other = make_experiment(client), make_experiment(client)
    run_id, foreign_run = make_run(client, exp_id), make_run(client, other)
    tid, request = two_span_trace()
    headers = {"content-type": "application/x-protobuf", "x-mlflow-experiment-id": exp_id}
    refused = client.post("/v1/traces", content=request.SerializeToString(),
                          headers={**headers, "x-mlflow-run-id": foreign_run})
    assert refused.status_code == 400
    assert experiment_count(client, trace_info) == 0
    resp = client.post("/v1/traces", content=request.SerializeToString(),
                       headers={**headers, "x-mlflow-run-id": run_id})
    assert resp.status_code == 200, resp.text
    found = client.post(f"{B}/traces/search", json={
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp_id}}],
        "filter": f"attributes.run_id = '{run_id}'"}).json()["traces"]
    assert [t["trace_id"] for t in found] == ["tr-" + tid.hex()]
