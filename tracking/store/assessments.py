"""Assessments on traces (feedback and expectations): create, read, update, delete; MLflow's JSON shape.

``value`` stores the assessment's ``feedback`` or ``expectation`` message as JSON exactly as it was
sent (a feedback value, its error; an expectation value or its serialized form), so any JSON value
round-trips unchanged.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update

from tracking.db.mlflow3_tables import assessments, trace_info
from tracking.errors import MlflowError, invalid_parameter
from tracking.store.proto_time import ms_to_timestamp, timestamp_to_ms
from tracking.store.validation import check_length

SOURCE_TYPES = frozenset({"HUMAN", "LLM_JUDGE", "CODE"})
MAX_NAME_LENGTH = 250
MAX_SOURCE_ID_LENGTH = 250
# The fields UpdateAssessment may change (its update_mask paths); source and span stay fixed.
_ASSESSMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,49}$")
UPDATABLE = frozenset({"assessment_name", "feedback", "expectation", "rationale", "metadata", "valid"})


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def _error_object(value: object, field: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(value.get(k), str | None) for k in ("error_code", "error_message", "stack_trace")):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an AssessmentError object.")
    return {k: value[k] for k in ("error_code", "error_message", "stack_trace") if value.get(k) is not None}


def _feedback(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an object.")
    out: dict = {}
    if "value" in value:
        out["value"] = value["value"]
    error = _error_object(value.get("error"), f"{field}.error")
    if error is not None:
        out["error"] = error
    if "value" not in out and error is None:
        raise invalid_parameter(f"Invalid value for parameter '{field}': a feedback needs a value or an error.")
    return out


def _expectation(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an object.")
    if "value" in value:
        return {"value": value["value"]}
    serialized = value.get("serialized_value")
    if isinstance(serialized, dict) and isinstance(serialized.get("value"), str):
        return {"serialized_value": {"serialization_format": str(serialized.get("serialization_format") or ""),
                                     "value": serialized["value"]}}
    raise invalid_parameter(f"Invalid value for parameter '{field}': an expectation needs a value.")


def _metadata(value: object, field: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an object of strings.")
    return dict(value)


def _optional_str(body: dict, key: str, field: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_parameter(f"Invalid value for parameter '{field}.{key}': expected a string.")
    return value or None


def new_assessment_row(body: object, trace_id: str, field: str = "assessment", *, keep_id: bool = False) -> dict:
    """Validate an Assessment JSON object and return the row to insert.

    The id is fresh unless ``keep_id``: assessments sent inside a finished trace keep the id the
    client gave them, since other assessments in the same trace may refer to it.
    """
    if not isinstance(body, dict):
        raise invalid_parameter(f"Missing value for required parameter '{field}'.")
    name = body.get("assessment_name")
    if not isinstance(name, str) or not name:
        raise invalid_parameter(f"Missing value for required parameter '{field}.assessment_name'.")
    check_length(f"{field}.assessment_name", name, MAX_NAME_LENGTH)
    source = body.get("source")
    if not isinstance(source, dict) or source.get("source_type") not in SOURCE_TYPES:
        raise invalid_parameter(f"Invalid value for parameter '{field}.source': a source with source_type "
                                f"one of {sorted(SOURCE_TYPES)} is required.")
    source_id = _optional_str(source, "source_id", f"{field}.source")
    check_length(f"{field}.source.source_id", source_id, MAX_SOURCE_ID_LENGTH)
    kinds = [k for k in ("feedback", "expectation", "issue") if body.get(k) is not None]
    if len(kinds) != 1 or kinds[0] == "issue":
        raise invalid_parameter(f"Invalid value for parameter '{field}': exactly one of 'feedback' or "
                                "'expectation' is required.")
    kind = kinds[0]
    value = _feedback(body[kind], f"{field}.feedback") if kind == "feedback" else _expectation(
        body[kind], f"{field}.expectation")
    created = body.get("create_time")
    created_ms = now_ms() if created is None else timestamp_to_ms(created, f"{field}.create_time")
    updated = body.get("last_update_time")
    updated_ms = created_ms if updated is None else timestamp_to_ms(updated, f"{field}.last_update_time")
    valid = body.get("valid", True)
    if not isinstance(valid, bool):
        raise invalid_parameter(f"Invalid value for parameter '{field}.valid': expected a boolean.")
    metadata = _metadata(body.get("metadata"), f"{field}.metadata")
    error = _error_object(body.get("error"), f"{field}.error")
    overrides = _optional_str(body, "overrides", field)
    span_id = _optional_str(body, "span_id", field)
    rationale = _optional_str(body, "rationale", field)
    for key, text, limit in (("overrides", overrides, 50), ("span_id", span_id, 50)):
        check_length(f"{field}.{key}", text, limit)
    given_id = body.get("assessment_id")
    if keep_id and isinstance(given_id, str) and _ASSESSMENT_ID.match(given_id):
        assessment_id = given_id
    else:
        assessment_id = f"a-{uuid.uuid4().hex}"
    return {
        "assessment_id": assessment_id,
        "trace_id": trace_id,
        "name": name,
        "assessment_type": kind,
        "value": json.dumps(value),
        "error": json.dumps(error) if error else None,
        "created_timestamp": created_ms,
        "last_updated_timestamp": updated_ms,
        "source_type": source["source_type"],
        "source_id": source_id,
        "run_id": (metadata or {}).get("mlflow.runId"),
        "span_id": span_id,
        "rationale": rationale,
        "overrides": overrides,
        "valid": valid,
        "assessment_metadata": json.dumps(metadata) if metadata else None,
    }


def assessment_rows_json(rows: Iterable) -> list[dict]:
    """Assessment JSON objects for ``assessments`` rows."""
    out = []
    for r in rows:
        item: dict = {
            "assessment_id": r.assessment_id,
            "assessment_name": r.name,
            "trace_id": r.trace_id,
            "source": {"source_type": r.source_type, **({"source_id": r.source_id} if r.source_id else {})},
            "create_time": ms_to_timestamp(r.created_timestamp),
            "last_update_time": ms_to_timestamp(r.last_updated_timestamp),
            r.assessment_type: json.loads(r.value),
            "valid": bool(r.valid),
        }
        for key in ("span_id", "rationale", "overrides"):
            if getattr(r, key) is not None:
                item[key] = getattr(r, key)
        if r.error:
            item["error"] = json.loads(r.error)
        if r.assessment_metadata:
            item["metadata"] = json.loads(r.assessment_metadata)
        out.append(item)
    return out


def _require_trace(conn: Connection, trace_id: str) -> None:
    if conn.execute(select(trace_info.c.request_id).where(trace_info.c.request_id == trace_id)).first() is None:
        raise MlflowError(f"Trace with ID '{trace_id[:100]}' not found.", "RESOURCE_DOES_NOT_EXIST")


def create_assessment(conn: Connection, trace_id: str, body: object) -> dict:
    """CreateAssessment; an assessment that ``overrides`` another marks that one invalid."""
    row = new_assessment_row(body, trace_id)
    _require_trace(conn, trace_id)
    if row["overrides"]:
        result = conn.execute(update(assessments).where(assessments.c.trace_id == trace_id,
                                                        assessments.c.assessment_id == row["overrides"])
                              .values(valid=False))
        if result.rowcount == 0:
            raise MlflowError(f"Assessment with ID '{row['overrides']}' not found for trace '{trace_id}'",
                              "RESOURCE_DOES_NOT_EXIST")
    conn.execute(assessments.insert().values(**row))
    return get_assessment(conn, trace_id, row["assessment_id"])


def _row(conn: Connection, trace_id: str, assessment_id: str):
    row = conn.execute(select(assessments).where(assessments.c.trace_id == trace_id,
                                                 assessments.c.assessment_id == assessment_id)).first()
    if row is None:
        _require_trace(conn, trace_id)
        raise MlflowError(f"Assessment with ID '{assessment_id[:100]}' not found for trace '{trace_id}'",
                          "RESOURCE_DOES_NOT_EXIST")
    return row


def get_assessment(conn: Connection, trace_id: str, assessment_id: str) -> dict:
    """One assessment; 404 when the trace or the assessment does not exist."""
    return assessment_rows_json([_row(conn, trace_id, assessment_id)])[0]


def _mask_paths(update_mask: object) -> list[str]:
    # FieldMask JSON is a comma-separated string of lowerCamelCase paths (protobuf JSON mapping);
    # accept snake_case and the {"paths": [...]} object form too.
    if isinstance(update_mask, str):
        paths = [re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), p.strip())
                 for p in update_mask.split(",") if p.strip()]
    elif isinstance(update_mask, dict) and isinstance(update_mask.get("paths"), list):
        paths = update_mask["paths"]
    else:
        raise invalid_parameter("Missing value for required parameter 'update_mask'.")
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown or not paths:
        raise invalid_parameter(f"Invalid update_mask: {unknown or paths}; updatable fields are {sorted(UPDATABLE)}.")
    return paths


def update_assessment(conn: Connection, trace_id: str, assessment_id: str, body: object,
                      update_mask: object) -> dict:
    """UpdateAssessment: change the fields named by ``update_mask``; source and span stay fixed."""
    if not isinstance(body, dict):
        raise invalid_parameter("Missing value for required parameter 'assessment'.")
    paths = _mask_paths(update_mask)
    existing = _row(conn, trace_id, assessment_id)
    values: dict = {"last_updated_timestamp": now_ms()}
    for path in paths:
        if path == "assessment_name":
            name = body.get("assessment_name")
            if not isinstance(name, str) or not name:
                raise invalid_parameter("Invalid value for parameter 'assessment.assessment_name'.")
            values["name"] = check_length("assessment.assessment_name", name, MAX_NAME_LENGTH)
        elif path in ("feedback", "expectation"):
            if existing.assessment_type != path:
                raise invalid_parameter(f"Cannot update {path} value on a {existing.assessment_type.capitalize()} "
                                        "assessment.")
            parse = _feedback if path == "feedback" else _expectation
            values["value"] = json.dumps(parse(body.get(path), f"assessment.{path}"))
        elif path == "rationale":
            values["rationale"] = _optional_str(body, "rationale", "assessment")
        elif path == "metadata":
            merged = json.loads(existing.assessment_metadata) if existing.assessment_metadata else {}
            merged.update(_metadata(body.get("metadata"), "assessment.metadata") or {})
            values["assessment_metadata"] = json.dumps(merged) if merged else None
        elif path == "valid":
            if not isinstance(body.get("valid"), bool):
                raise invalid_parameter("Invalid value for parameter 'assessment.valid': expected a boolean.")
            values["valid"] = body["valid"]
    conn.execute(update(assessments).where(assessments.c.assessment_id == assessment_id).values(**values))
    return get_assessment(conn, trace_id, assessment_id)


def delete_assessment(conn: Connection, trace_id: str, assessment_id: str) -> None:
    """Delete an assessment (idempotent); the one it overrode becomes valid again."""
    _require_trace(conn, trace_id)
    row = conn.execute(select(assessments.c.overrides).where(assessments.c.trace_id == trace_id,
                                                             assessments.c.assessment_id == assessment_id)).first()
    if row is None:
        return
    if row.overrides:
        conn.execute(update(assessments).where(assessments.c.trace_id == trace_id,
                                               assessments.c.assessment_id == row.overrides).values(valid=True))
    conn.execute(delete(assessments).where(assessments.c.assessment_id == assessment_id))
