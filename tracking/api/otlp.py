"""OTLP/HTTP trace ingestion at ``POST /v1/traces`` (https://opentelemetry.io/docs/specs/otlp/#otlphttp).

The body is an ``ExportTraceServiceRequest`` in binary protobuf (``application/x-protobuf``) or
protobuf JSON (``application/json``), parsed with the official ``opentelemetry-proto`` messages.
``x-mlflow-experiment-id`` names the experiment (and ``x-mlflow-run-id``, optionally, a run in it).
A request is stored whole in one transaction or refused whole with an MLflow-style 4xx, so a bad
payload leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib

from fastapi import APIRouter
from google.protobuf.json_format import ParseDict
from google.protobuf.json_format import ParseError as JsonParseError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response

from tracking.api.body import parse_json_object
from tracking.api.in_transaction import in_transaction
from tracking.errors import MlflowError, invalid_parameter
from tracking.store.spans import log_spans

router = APIRouter()
EXPERIMENT_HEADER = "x-mlflow-experiment-id"
RUN_HEADER = "x-mlflow-run-id"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_SPANS_PER_REQUEST = 10_000
# Decompressed bodies are bounded too, so a small gzip bomb cannot exhaust memory.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
# OTLP JSON writes these byte fields as hex (spec: "JSON Protobuf Encoding"), protobuf JSON as base64.
_HEX = re.compile(r"[0-9a-fA-F]+")
_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _bad(message: str) -> MlflowError:
    return MlflowError(message, "INVALID_PARAMETER_VALUE")


def _decompress(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise MlflowError(f"Unsupported Content-Encoding {encoding[:30]!r}: use gzip, deflate or none.",
                          "BAD_REQUEST", status=415)
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise _bad(f"The request body is not valid {encoding} data.") from exc
    if len(out) > MAX_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
        raise MlflowError("The decompressed OTLP payload is too large.", "RESOURCE_EXHAUSTED", status=413)
    if not inflater.eof:
        raise _bad(f"The request body is truncated {encoding} data.")
    return out


def _hex_ids_to_base64(node: object) -> None:
    """Rewrite OTLP JSON's hex trace/span ids in place into the base64 protobuf JSON expects.

    Ids already in base64 (protobuf's canonical JSON) are left alone: a hex id is exactly 32 (trace)
    or 16 (span) hex digits, which no base64 encoding of a 16- or 8-byte id can be.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                is_hex_id = isinstance(value, str) and len(value) in (16, 32) and _HEX.fullmatch(value)
                if key in _HEX_ID_FIELDS and is_hex_id:
                    item[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                elif isinstance(value, dict | list):
                    stack.append(value)


def parse_export_request(body: bytes, media_type: str) -> ExportTraceServiceRequest:
    """The ExportTraceServiceRequest in ``body``; 400 when it is not one."""
    message = ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise _bad("Invalid OTLP payload: the body is not a valid protobuf ExportTraceServiceRequest "
                       "(truncated or corrupt).") from exc
        return message
    document = parse_json_object(body)
    _hex_ids_to_base64(document)
    try:
        ParseDict(document, message, ignore_unknown_fields=False)
    except (JsonParseError, binascii.Error, ValueError, TypeError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else "not an ExportTraceServiceRequest"
        raise _bad(f"Invalid OTLP JSON payload: {detail}") from exc
    return message


def _spans_of(message: ExportTraceServiceRequest) -> list:
    found = [span for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]
    if len(found) > MAX_SPANS_PER_REQUEST:
        raise _bad(f"An OTLP request may carry at most {MAX_SPANS_PER_REQUEST} spans, got {len(found)}.")
    return found


@router.post("/v1/traces", operation_id="otlp.ingest")
async def ingest(request: Request):
    """Store the spans of an OTLP export request in the experiment named by ``x-mlflow-experiment-id``."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in (PROTOBUF, JSON):
        raise MlflowError(f"Unsupported Content-Type {content_type[:60]!r}: send {PROTOBUF} or {JSON}.",
                          "BAD_REQUEST", status=415)
    experiment_id = request.headers.get(EXPERIMENT_HEADER)
    if not experiment_id:
        raise invalid_parameter(f"Missing required header '{EXPERIMENT_HEADER}' naming the experiment.")
    run_id = request.headers.get(RUN_HEADER) or None
    body = _decompress(await request.body(), request.headers.get("content-encoding"))
    message = parse_export_request(body, media_type)
    spans = _spans_of(message)
    # The experiment is checked even for an empty export, so a wrong header never looks accepted.
    await in_transaction(request, lambda conn: log_spans(conn, experiment_id, spans, run_id))
    response = ExportTraceServiceResponse()
    if media_type == JSON:
        return Response(json.dumps({}), media_type=JSON)
    return Response(response.SerializeToString(), media_type=PROTOBUF)
