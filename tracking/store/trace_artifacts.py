"""Spans a client uploaded as ``traces.json`` (its fallback when it does not use OTLP), read as OTLP JSON.

MLflow's client writes ``{"spans": [...]}`` with OTLP-shaped spans whose attribute values are JSON
strings; they are turned into the protobuf JSON spans :mod:`tracking.store.spans` returns, so a
trace reads the same whichever way its spans arrived.
"""

from __future__ import annotations

import json

from tracking.artifacts.paths import ArtifactOwner
from tracking.artifacts.repository import ArtifactRepository
from tracking.artifacts.run_locations import served_location
from tracking.errors import MlflowError

TRACE_DATA_FILE = "traces.json"
# A trace's span file is read whole; larger ones are left to the client, which streams the artifact.
MAX_TRACE_DATA_BYTES = 32 * 1024 * 1024


def _any_value(value: object) -> dict:
    """A Python value as OTLP ``AnyValue`` protobuf JSON."""
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return {"int_value": str(value)}
    if isinstance(value, int | float):
        return {"double_value": float(value)}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, list):
        return {"array_value": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlist_value": {"values": [{"key": str(k), "value": _any_value(v)} for k, v in value.items()]}}
    return {}


def _attributes(raw: object) -> list[dict]:
    if not isinstance(raw, dict):
        return []
    out = []
    for key, text in raw.items():
        # MLflow stores each attribute JSON-encoded; a value that is not JSON is kept as a string.
        try:
            value = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            value = text
        out.append({"key": str(key), "value": _any_value(value)})
    return out


def _span(raw: dict) -> dict | None:
    if not isinstance(raw, dict) or not raw.get("trace_id") or not raw.get("span_id"):
        return None
    span = {key: raw[key] for key in ("trace_id", "span_id", "name") if isinstance(raw.get(key), str)}
    if isinstance(raw.get("parent_span_id"), str) and raw["parent_span_id"]:
        span["parent_span_id"] = raw["parent_span_id"]
    for key in ("start_time_unix_nano", "end_time_unix_nano"):
        if isinstance(raw.get(key), int) and raw[key] >= 0:
            span[key] = str(raw[key])
    status = raw.get("status")
    if isinstance(status, dict) and status.get("code") in ("STATUS_CODE_OK", "STATUS_CODE_ERROR"):
        span["status"] = {"code": status["code"], **({"message": status["message"]}
                                                      if isinstance(status.get("message"), str) and status["message"]
                                                      else {})}
    span["attributes"] = _attributes(raw.get("attributes"))
    events = []
    for event in raw.get("events") or []:
        if isinstance(event, dict) and isinstance(event.get("name"), str):
            item = {"name": event["name"], "attributes": _attributes(event.get("attributes"))}
            if isinstance(event.get("time_unix_nano"), int):
                item["time_unix_nano"] = str(event["time_unix_nano"])
            events.append(item)
    if events:
        span["events"] = events
    return span


def spans_from_artifact(repository: ArtifactRepository, trace_id: str, experiment_id: str,
                        artifact_location: str | None) -> list[dict] | None:
    """The spans of the trace's ``traces.json``, or None when there is none this server can read."""
    if not artifact_location:
        return None
    root = served_location(artifact_location)
    # Only the trace's own artifact directory is read, whatever the tag claims.
    if root is None or root.owner != ArtifactOwner(experiment_id, "trace", trace_id) or root.inner != "":
        return None
    try:
        reader = repository.open_reader(root.child((TRACE_DATA_FILE,)))
    except MlflowError:
        return None
    try:
        if reader.size > MAX_TRACE_DATA_BYTES:
            return None
        chunks, total = [], 0
        while total <= MAX_TRACE_DATA_BYTES:
            chunk = reader.read(1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        reader.close()
    try:
        document = json.loads(b"".join(chunks))
    except ValueError:
        return None
    raw_spans = document.get("spans") if isinstance(document, dict) else None
    if not isinstance(raw_spans, list):
        return None
    spans = [s for s in (_span(raw) for raw in raw_spans) if s is not None]
    # Root first, then by start time, as spans stored from OTLP are returned.
    spans.sort(key=lambda s: ("parent_span_id" in s, int(s.get("start_time_unix_nano", "0"))))
    return spans


def _python_value(value: object) -> object:
    """An OTLP ``AnyValue`` protobuf JSON object as a plain Python value (the inverse of :func:`_any_value`)."""
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "int_value":
        return int(inner)
    if kind == "array_value":
        return [_python_value(v) for v in (inner or {}).get("values", [])]
    if kind == "kvlist_value":
        return {kv.get("key"): _python_value(kv.get("value")) for kv in (inner or {}).get("values", [])}
    return inner


def _attribute_json(value: object) -> str:
    # MLflow's traces.json holds every attribute JSON-encoded. Spans that came over OTLP from MLflow's client
    # already carry JSON text in string values; any other string is encoded here.
    plain = _python_value(value)
    if isinstance(plain, str):
        try:
            json.loads(plain)
            return plain
        except ValueError:
            return json.dumps(plain)
    return json.dumps(plain)


def artifact_span(span: dict) -> dict:
    """A stored span (protobuf JSON) in the ``traces.json`` form MLflow's UI reads (get-trace-artifact)."""
    out = {key: span[key] for key in ("trace_id", "span_id", "name") if key in span}
    out["parent_span_id"] = span.get("parent_span_id") or None
    for key in ("start_time_unix_nano", "end_time_unix_nano"):
        if key in span:
            out[key] = int(span[key])
    status = span.get("status") or {}
    out["status"] = {"code": status.get("code") or "STATUS_CODE_UNSET", "message": status.get("message", "")}
    out["attributes"] = {a["key"]: _attribute_json(a.get("value")) for a in span.get("attributes", [])}
    out["events"] = [{"name": e.get("name"), "time_unix_nano": int(e.get("time_unix_nano", "0")),
                      "attributes": {a["key"]: _attribute_json(a.get("value")) for a in e.get("attributes", [])}}
                     for e in span.get("events", [])]
    return out
