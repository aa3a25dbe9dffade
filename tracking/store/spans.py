"""Spans of traces, stored from OTLP ``Span`` messages and read back in the same protobuf JSON form.

Each span is kept whole (``content``: the OTLP span as protobuf JSON), so attributes such as
``mlflow.spanInputs``/``mlflow.spanOutputs``, events and status come back exactly as exported. The
columns beside it (name, type, status, times) serve ordering and filtering.
"""

from __future__ import annotations

import json
from collections import defaultdict

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from sqlalchemy import Connection, case, select, update

from tracking.db.mlflow3_tables import spans, trace_info, trace_request_metadata, trace_tags
from tracking.db.tables import runs
from tracking.errors import invalid_parameter
from tracking.store.experiment_checks import require_active_experiment
from tracking.store.traces import (
    ARTIFACT_LOCATION_TAG,
    SPANS_IN_TRACKING_STORE,
    SPANS_LOCATION_TAG,
    TRACE_NAME_TAG,
    preview,
    trace_artifact_location,
    trace_id_taken,
    upsert_pairs,
)
from tracking.store.upsert import dialect_insert, insert_ignoring_conflicts

INPUTS_KEY = "mlflow.spanInputs"
OUTPUTS_KEY = "mlflow.spanOutputs"
SPAN_TYPE_KEY = "mlflow.spanType"
SOURCE_RUN_KEY = "mlflow.sourceRun"
_STATUS_NAMES = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}


def mlflow_trace_id(otel_trace_id: bytes) -> str:
    """MLflow's id for an OTel trace: ``tr-`` and the 32 hex digits of the 16-byte OTel id."""
    return "tr-" + otel_trace_id.hex()


def any_value(value: AnyValue) -> object:
    """An OTLP ``AnyValue`` as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _attribute_text(span: Span, key: str) -> str | None:
    """An attribute as text (MLflow spans carry inputs/outputs as JSON values)."""
    for attr in span.attributes:
        if attr.key == key:
            value = any_value(attr.value)
            return value if isinstance(value, str) else json.dumps(value, default=str)
    return None


def _span_row(span: Span, experiment_id: int, index: int) -> dict:
    if len(span.trace_id) != 16:
        raise invalid_parameter(f"Invalid OTLP span #{index}: trace_id must be 16 bytes, got {len(span.trace_id)}.")
    if len(span.span_id) != 8:
        raise invalid_parameter(f"Invalid OTLP span #{index}: span_id must be 8 bytes, got {len(span.span_id)}.")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise invalid_parameter(f"Invalid OTLP span #{index}: parent_span_id must be 8 bytes.")
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        raise invalid_parameter(f"Invalid OTLP span #{index}: it ends before it starts.")
    # BIGINT is signed; OTLP times are unsigned nanoseconds, which fit until the year 2262.
    if max(span.start_time_unix_nano, span.end_time_unix_nano) >= 2**63:
        raise invalid_parameter(f"Invalid OTLP span #{index}: its time is out of range.")
    span_type = _attribute_text(span, SPAN_TYPE_KEY)
    return {
        "trace_id": mlflow_trace_id(span.trace_id),
        "experiment_id": experiment_id,
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else None,
        "name": span.name,
        "type": span_type[:500] if span_type else None,
        "status": _STATUS_NAMES.get(span.status.code, "UNSET"),
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano or None,
        "content": json.dumps(MessageToDict(span, preserving_proto_field_name=True), separators=(",", ":")),
    }


def _check_run(conn: Connection, run_id: str, exp_id: int) -> None:
    row = conn.execute(select(runs.c.experiment_id).where(runs.c.run_uuid == run_id)).first()
    if row is None or row.experiment_id != exp_id:
        raise invalid_parameter(f"Run '{run_id[:64]}' named by x-mlflow-run-id is not a run of experiment {exp_id}.")


def log_spans(conn: Connection, experiment_id: str, otel_spans: list[Span], run_id: str | None = None) -> list[str]:
    """Store spans under an active experiment, creating or completing their traces; returns the trace ids.

    Spans re-sent with the same ids replace the stored ones (exporters retry). A trace that already
    belongs to another experiment is refused, so a caller allowed to write one experiment cannot add
    spans to another experiment's trace. ``run_id`` (the ``x-mlflow-run-id`` header) links the traces
    to a run of the same experiment, as ``mlflow.sourceRun`` metadata.
    """
    exp_id, exp_location = require_active_experiment(conn, experiment_id, "x-mlflow-experiment-id")
    if run_id is not None:
        _check_run(conn, run_id, exp_id)
    by_trace: dict[str, list[tuple[Span, dict]]] = defaultdict(list)
    for index, span in enumerate(otel_spans):
        row = _span_row(span, exp_id, index)
        by_trace[row["trace_id"]].append((span, row))
    for trace_id, items in by_trace.items():
        _ensure_trace(conn, trace_id, exp_id, exp_location, items)
        stmt = dialect_insert(conn, spans)
        stmt = stmt.on_conflict_do_update(
            index_elements=["trace_id", "span_id"],
            set_={c: stmt.excluded[c] for c in ("parent_span_id", "name", "type", "status", "start_time_unix_nano",
                                                "end_time_unix_nano", "content")})
        conn.execute(stmt, [row for _, row in items])
        upsert_pairs(conn, trace_tags, trace_id, {SPANS_LOCATION_TAG: SPANS_IN_TRACKING_STORE})
        if run_id is not None:
            insert_ignoring_conflicts(conn, trace_request_metadata,
                                      [{"request_id": trace_id, "key": SOURCE_RUN_KEY, "value": run_id}],
                                      ["request_id", "key"])
    return list(by_trace)


def _ensure_trace(conn: Connection, trace_id: str, exp_id: int, exp_location: str,
                  items: list[tuple[Span, dict]]) -> None:
    """Create the trace from its spans, or fill in what the spans tell about an existing one."""
    root = next((span for span, row in items if row["parent_span_id"] is None), None)
    start_ns = min(span.start_time_unix_nano for span, _ in items)
    values: dict = {"timestamp_ms": start_ns // 1_000_000, "status": "IN_PROGRESS"}
    if root is not None:
        values["status"] = "ERROR" if root.status.code == Status.STATUS_CODE_ERROR else "OK"
        if root.end_time_unix_nano:
            values["execution_time_ms"] = (root.end_time_unix_nano - root.start_time_unix_nano) // 1_000_000
    inserted = conn.execute(
        dialect_insert(conn, trace_info)
        .values(request_id=trace_id, experiment_id=exp_id, **values)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(trace_info.c.request_id)
    ).first() is not None
    row = conn.execute(select(trace_info.c.experiment_id, trace_info.c.status)
                       .where(trace_info.c.request_id == trace_id)).first()
    if row.experiment_id != exp_id:
        raise trace_id_taken(trace_id)
    if inserted:
        tags = {ARTIFACT_LOCATION_TAG: trace_artifact_location(exp_location, trace_id)}
        if root is not None:
            tags[TRACE_NAME_TAG] = root.name[:8000]
        upsert_pairs(conn, trace_tags, trace_id, tags)
    elif root is not None and row.status in ("IN_PROGRESS", "STATE_UNSPECIFIED"):
        # The root span closes a trace that was opened by earlier spans.
        conn.execute(update(trace_info).where(trace_info.c.request_id == trace_id).values(**values))
    if root is not None:
        # Previews come from the root span unless the client's summary set them already.
        conn.execute(update(trace_info).where(trace_info.c.request_id == trace_id).values(
            request_preview=case((trace_info.c.request_preview.is_(None),
                                  preview(_attribute_text(root, INPUTS_KEY))),
                                 else_=trace_info.c.request_preview),
            response_preview=case((trace_info.c.response_preview.is_(None),
                                   preview(_attribute_text(root, OUTPUTS_KEY))),
                                  else_=trace_info.c.response_preview)))


def load_spans(conn: Connection, trace_ids: list[str]) -> dict[str, list[dict]]:
    """Each trace's spans as OTLP protobuf JSON objects: the root first, then by start time."""
    out: dict[str, list[dict]] = defaultdict(list)
    if not trace_ids:
        return out
    query = (select(spans.c.trace_id, spans.c.content)
             .where(spans.c.trace_id.in_(trace_ids))
             .order_by(spans.c.trace_id, case((spans.c.parent_span_id.is_(None), 0), else_=1),
                       spans.c.start_time_unix_nano, spans.c.span_id))
    for row in conn.execute(query):
        out[row.trace_id].append(json.loads(row.content))
    return out
