"""Build OTLP export requests and StartTraceV3 bodies the way MLflow's client shapes them."""

from __future__ import annotations

import json
import os

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def new_otel_trace_id() -> bytes:
    """A random 16-byte OTel trace id."""
    return os.urandom(16)


def set_any(target: AnyValue, value) -> None:
    """Fill an AnyValue from a Python value (dicts become kvlists, lists arrays)."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, dict):
        for k, v in value.items():
            kv = target.kvlist_value.values.add()
            kv.key = k
            set_any(kv.value, v)
    elif isinstance(value, list):
        for v in value:
            set_any(target.array_value.values.add(), v)


def make_span(trace_id: bytes, span_id: bytes, name: str, *, parent: bytes | None = None, start_ns: int,
              end_ns: int, attributes: dict | None = None, error: bool = False) -> Span:
    """One OTLP span."""
    span = Span(trace_id=trace_id, span_id=span_id, name=name, start_time_unix_nano=start_ns,
                end_time_unix_nano=end_ns)
    if parent:
        span.parent_span_id = parent
    span.status.code = Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK
    for key, value in (attributes or {}).items():
        attr = span.attributes.add()
        attr.key = key
        set_any(attr.value, value)
    return span


def export_request(*spans: Span) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest holding ``spans`` in one resource/scope."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    scope.spans.extend(spans)
    return request


def two_span_trace(start_ns: int = 1_700_000_000_000_000_000) -> tuple[bytes, ExportTraceServiceRequest]:
    """A root span ``parent`` (inputs x=1, outputs 2) with one child ``child``; returns (otel id, request)."""
    tid = new_otel_trace_id()
    root_id, child_id = os.urandom(8), os.urandom(8)
    root = make_span(tid, root_id, "parent", start_ns=start_ns, end_ns=start_ns + 50_000_000,
                     attributes={"mlflow.spanInputs": {"x": 1}, "mlflow.spanOutputs": 2,
                                 "mlflow.spanType": "CHAIN"})
    child = make_span(tid, child_id, "child", parent=root_id, start_ns=start_ns + 10_000_000,
                      end_ns=start_ns + 20_000_000,
                      attributes={"mlflow.spanInputs": {"y": [1, 2]}, "mlflow.spanOutputs": "ok"})
    return tid, export_request(root, child)


def post_otlp(client, request: ExportTraceServiceRequest, experiment_id: str):
    """POST a protobuf OTLP request."""
    return client.post("/v1/traces", content=request.SerializeToString(),
                       headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id})


def trace_info_body(trace_id: str, experiment_id: str, **extra) -> dict:
    """A StartTraceV3 body like MLflow's client sends when a trace ends."""
    info = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": "2023-11-14T22:13:20.000Z",
        "execution_duration": "0.050s",
        "state": "OK",
        "trace_metadata": {"mlflow.trace_schema.version": "3",
                           "mlflow.trace.sizeStats": json.dumps({"num_spans": 2})},
        "tags": {"mlflow.traceName": "parent", "mlflow.user": "alice"},
        "request_preview": '{"x": 1}',
        "response_preview": "2",
    }
    info.update(extra)
    return {"trace": {"trace_info": info}}
