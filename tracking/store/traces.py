"""Trace infos (MLflow 3 TraceInfoV3): start/merge, read in bulk, tags, delete; MLflow's JSON shape.

A trace may be created by ``StartTraceV3`` (the client's summary, sent when the trace ends) or first
by OTLP span ingestion (:mod:`tracking.store.spans`); whichever comes second merges into the row the
first one wrote, so the order of the two requests does not matter.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

from sqlalchemy import Connection, delete, select, update

from tracking.db.mlflow3_tables import (
    assessments,
    spans,
    trace_info,
    trace_request_metadata,
    trace_run_links,
    trace_tags,
)
from tracking.errors import MlflowError, already_exists, invalid_parameter
from tracking.store.assessments import assessment_rows_json, new_assessment_row
from tracking.store.experiment_checks import parse_experiment_id, require_active_experiment
from tracking.store.proto_time import duration_to_ms, ms_to_duration, ms_to_timestamp, timestamp_to_ms
from tracking.store.run_lookup import get_run_row
from tracking.store.upsert import dialect_insert, insert_ignoring_conflicts
from tracking.store.validation import check_length, validate_key

ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
SPANS_IN_TRACKING_STORE = "TRACKING_STORE"
TRACE_NAME_TAG = "mlflow.traceName"
# Tags only the server writes: where the spans and artifacts of a trace live.
SERVER_TAGS = frozenset({SPANS_LOCATION_TAG, ARTIFACT_LOCATION_TAG, "mlflow.trace.archiveLocation"})
STATES = frozenset({"STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS"})
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
PREVIEW_LENGTH = 1000
MAX_TRACE_IDS_PER_REQUEST = 100
_TRACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,49}$")


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def trace_not_found(trace_id: str) -> MlflowError:
    """404 for an unknown trace."""
    return MlflowError(f"Trace with ID '{trace_id[:100]}' not found.", "RESOURCE_DOES_NOT_EXIST")


def trace_id_taken(trace_id: str) -> MlflowError:
    """A trace id already used in another experiment.

    Trace ids are chosen by clients and unique across the server. The answer is the same wherever the
    existing trace is (an experiment the caller can see or not) and names no experiment; see SECURITY.md
    ("Lifecycle", traces) for what it still tells.
    """
    return already_exists(f"Trace ID '{trace_id[:100]}' is already in use; trace IDs are unique across experiments.")


def validate_trace_id(trace_id: object, field: str = "trace_id") -> str:
    """A trace id as MLflow makes them (``tr-<hex>``) or another short id without path characters."""
    if not isinstance(trace_id, str) or not trace_id:
        raise invalid_parameter(f"Missing value for required parameter '{field}'.")
    if not _TRACE_ID.match(trace_id):
        raise invalid_parameter(f"Invalid value {trace_id[:100]!r} for parameter '{field}': not a trace id.")
    return trace_id


def preview(text: object) -> str | None:
    """A request/response preview cut to the width MLflow stores."""
    if text is None:
        return None
    text = str(text)
    return text[:PREVIEW_LENGTH]


def trace_artifact_location(experiment_artifact_location: str, trace_id: str) -> str:
    """Where a trace's ``traces.json`` lives: ``<experiment location>/traces/<trace_id>/artifacts``."""
    return f"{experiment_artifact_location.rstrip('/')}/traces/{trace_id}/artifacts"


def _string_map(value: object, field: str) -> dict[str, str]:
    """A protobuf map<string,string> in JSON: an object with string values (or MLflow's key/value list)."""
    if value is None:
        return {}
    if isinstance(value, list):
        pairs = {}
        for item in value:
            if not isinstance(item, dict):
                raise invalid_parameter(f"Invalid value for parameter '{field}': expected an object.")
            pairs[item.get("key")] = item.get("value")
        value = pairs
    if not isinstance(value, dict):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an object of strings.")
    out = {}
    for key, item in value.items():
        # Keys come from application code (mlflow.update_current_trace); MLflow stores them as given,
        # so only their length is bounded here: refusing one would lose the whole trace.
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise invalid_parameter(f"Invalid key in parameter '{field}': keys are 1 to {MAX_KEY_LENGTH} characters.")
        if item is None:
            item = ""
        if not isinstance(item, str):
            raise invalid_parameter(f"Invalid value for parameter '{field}[{key!r}]': expected a string.")
        # MLflow truncates over-long trace tag and metadata values rather than refusing the trace.
        out[key] = item[:MAX_TAG_VALUE_LENGTH]
    return out


def parse_trace_info(info: dict) -> dict:
    """Validate a TraceInfoV3 JSON object into the fields :func:`start_trace` stores."""
    if not isinstance(info, dict):
        raise invalid_parameter("Missing value for required parameter 'trace.trace_info'.")
    trace_id = validate_trace_id(info.get("trace_id"), "trace.trace_info.trace_id")
    location = info.get("trace_location")
    experiment = location.get("mlflow_experiment") if isinstance(location, dict) else None
    if not isinstance(experiment, dict) or not experiment.get("experiment_id"):
        raise invalid_parameter("Missing value for required parameter "
                                "'trace.trace_info.trace_location.mlflow_experiment.experiment_id': "
                                "this server stores traces in MLflow experiments only.")
    state = info.get("state") or "STATE_UNSPECIFIED"
    if state not in STATES:
        raise invalid_parameter(f"Invalid value {str(state)[:50]!r} for parameter 'trace.trace_info.state'.")
    client_request_id = info.get("client_request_id")
    if client_request_id is not None and not isinstance(client_request_id, str):
        raise invalid_parameter("Invalid value for parameter 'trace.trace_info.client_request_id'.")
    check_length("trace.trace_info.client_request_id", client_request_id, 50)
    request_time = info.get("request_time")
    duration = info.get("execution_duration")
    raw_assessments = info.get("assessments") or []
    if not isinstance(raw_assessments, list):
        raise invalid_parameter("Invalid value for parameter 'trace.trace_info.assessments': expected a list.")
    return {
        "trace_id": trace_id,
        "experiment_id": experiment["experiment_id"],
        "timestamp_ms": now_ms() if request_time is None else timestamp_to_ms(request_time, "request_time"),
        "execution_time_ms": None if duration is None else duration_to_ms(duration, "execution_duration"),
        "status": state,
        "client_request_id": client_request_id,
        "request_preview": preview(info.get("request_preview")),
        "response_preview": preview(info.get("response_preview")),
        "metadata": _string_map(info.get("trace_metadata"), "trace_metadata"),
        "tags": {k: v for k, v in _string_map(info.get("tags"), "tags").items() if k not in SERVER_TAGS},
        "assessments": raw_assessments,
    }


def upsert_pairs(conn: Connection, table, trace_id: str, pairs: dict[str, str]) -> None:
    """Insert or overwrite key/value rows of ``trace_tags`` or ``trace_request_metadata``."""
    if not pairs:
        return
    stmt = dialect_insert(conn, table)
    stmt = stmt.on_conflict_do_update(index_elements=["request_id", "key"], set_={"value": stmt.excluded.value})
    conn.execute(stmt, [{"request_id": trace_id, "key": k, "value": v} for k, v in pairs.items()])


def start_trace(conn: Connection, info: dict) -> dict:
    """StartTraceV3: create the trace, or merge into the one OTLP ingestion already created."""
    fields = parse_trace_info(info)
    trace_id = fields["trace_id"]
    exp_id, exp_location = require_active_experiment(conn, fields["experiment_id"],
                                                     "trace_location.mlflow_experiment.experiment_id")
    new_assessments = [new_assessment_row(a, trace_id, f"trace.trace_info.assessments[{i}]", keep_id=True)
                       for i, a in enumerate(fields["assessments"])]
    columns = {k: fields[k] for k in ("timestamp_ms", "execution_time_ms", "status", "client_request_id")}
    # Insert-or-merge in one statement pair: OTLP ingestion may be creating the same trace right now.
    inserted = conn.execute(
        dialect_insert(conn, trace_info)
        .values(request_id=trace_id, experiment_id=exp_id, request_preview=fields["request_preview"],
                response_preview=fields["response_preview"], **columns)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(trace_info.c.request_id)
    ).first() is not None
    if not inserted:
        existing = conn.execute(select(trace_info.c.experiment_id).where(trace_info.c.request_id == trace_id)).first()
        if existing.experiment_id != exp_id:
            raise trace_id_taken(trace_id)
        # The client's summary is authoritative for the top-level fields; previews computed from
        # spans are kept unless the client sends its own.
        for key in ("request_preview", "response_preview"):
            if fields[key] is not None:
                columns[key] = fields[key]
        conn.execute(update(trace_info).where(trace_info.c.request_id == trace_id).values(**columns))
    tags = dict(fields["tags"])
    tags[ARTIFACT_LOCATION_TAG] = trace_artifact_location(exp_location, trace_id)
    upsert_pairs(conn, trace_tags, trace_id, tags)
    upsert_pairs(conn, trace_request_metadata, trace_id, fields["metadata"])
    # A re-sent trace (the client retries) carries the same assessments again: keep the first copy.
    insert_ignoring_conflicts(conn, assessments, new_assessments, ["assessment_id"])
    return load_trace_infos(conn, [trace_id])[0]


def get_trace_experiment_id(conn: Connection, trace_id: str) -> str | None:
    """The experiment holding ``trace_id``, for authorization; None when the trace does not exist."""
    row = conn.execute(select(trace_info.c.experiment_id).where(trace_info.c.request_id == trace_id)).first()
    return None if row is None else str(row.experiment_id)


def get_trace_info(conn: Connection, trace_id: str) -> dict:
    """One TraceInfoV3 with tags, metadata and assessments; 404 when unknown."""
    found = load_trace_infos(conn, [trace_id])
    if not found:
        raise trace_not_found(trace_id)
    return found[0]


def load_trace_infos(conn: Connection, trace_ids: list[str], *, extra_where=None) -> list[dict]:
    """TraceInfoV3 JSON for ``trace_ids`` in that order (missing ones skipped); four queries in all."""
    if not trace_ids:
        return []
    query = select(trace_info).where(trace_info.c.request_id.in_(trace_ids))
    if extra_where is not None:
        query = query.where(extra_where)
    rows = {r.request_id: r for r in conn.execute(query)}
    ids = [t for t in dict.fromkeys(trace_ids) if t in rows]
    if not ids:
        return []
    tags: dict[str, dict] = defaultdict(dict)
    for r in conn.execute(select(trace_tags).where(trace_tags.c.request_id.in_(ids))):
        tags[r.request_id][r.key] = r.value
    meta: dict[str, dict] = defaultdict(dict)
    for r in conn.execute(select(trace_request_metadata).where(trace_request_metadata.c.request_id.in_(ids))):
        meta[r.request_id][r.key] = r.value
    assessed: dict[str, list] = defaultdict(list)
    rows_by_trace = conn.execute(select(assessments).where(assessments.c.trace_id.in_(ids))
                                 .order_by(assessments.c.created_timestamp, assessments.c.assessment_id))
    for a in assessment_rows_json(rows_by_trace):
        assessed[a["trace_id"]].append(a)
    return [_trace_info_json(rows[t], tags[t], meta[t], assessed[t]) for t in ids]


def _trace_info_json(row, tags: dict, meta: dict, trace_assessments: list) -> dict:
    out = {
        "trace_id": row.request_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(row.experiment_id)}},
        "request_time": ms_to_timestamp(row.timestamp_ms),
        "state": row.status,
        "trace_metadata": meta,
        "tags": tags,
        "assessments": trace_assessments,
    }
    if row.execution_time_ms is not None:
        out["execution_duration"] = ms_to_duration(row.execution_time_ms)
    for key in ("client_request_id", "request_preview", "response_preview"):
        value = getattr(row, key)
        if value is not None:
            out[key] = value
    return out


def _require_trace(conn: Connection, trace_id: str) -> None:
    if get_trace_experiment_id(conn, trace_id) is None:
        raise trace_not_found(trace_id)


def set_trace_tag(conn: Connection, trace_id: str, key: str, value: str | None) -> None:
    """Set one tag (server-managed tags are refused)."""
    validate_key(key, "key")
    if key in SERVER_TAGS:
        raise invalid_parameter(f"Tag '{key}' is immutable and cannot be set on a trace.")
    if value is not None and not isinstance(value, str):
        raise invalid_parameter("Invalid value for parameter 'value': expected a string.")
    _require_trace(conn, trace_id)
    upsert_pairs(conn, trace_tags, trace_id, {key: (value or "")[:MAX_TAG_VALUE_LENGTH]})


def delete_trace_tag(conn: Connection, trace_id: str, key: str) -> None:
    """Delete one tag; 404 when the trace or the tag does not exist."""
    validate_key(key, "key")
    if key in SERVER_TAGS:
        raise invalid_parameter(f"Tag '{key}' is immutable and cannot be deleted on a trace.")
    _require_trace(conn, trace_id)
    result = conn.execute(delete(trace_tags).where(trace_tags.c.request_id == trace_id, trace_tags.c.key == key))
    if result.rowcount == 0:
        raise MlflowError(f"No trace tag with key '{key}' for trace with ID '{trace_id}'",
                          "RESOURCE_DOES_NOT_EXIST")


def delete_traces(conn: Connection, *, experiment_id: str, max_timestamp_millis: int | None,
                  max_traces: int | None, trace_ids: list[str]) -> int:
    """DeleteTraces: by ids, or the oldest up to ``max_traces`` before ``max_timestamp_millis``."""
    exp_id = parse_experiment_id(experiment_id)
    if trace_ids and (max_timestamp_millis is not None or max_traces is not None):
        raise invalid_parameter("Either `max_timestamp_millis` or `request_ids` can be specified, not both.")
    if not trace_ids and max_timestamp_millis is None:
        raise invalid_parameter("Either `max_timestamp_millis` or `request_ids` must be specified.")
    if max_traces is not None and max_traces <= 0:
        raise invalid_parameter("`max_traces` must be a positive integer.")
    if len(trace_ids) > MAX_TRACE_IDS_PER_REQUEST * 10:
        raise invalid_parameter(f"At most {MAX_TRACE_IDS_PER_REQUEST * 10} request_ids may be deleted at once.")
    query = select(trace_info.c.request_id).where(trace_info.c.experiment_id == exp_id)
    if trace_ids:
        query = query.where(trace_info.c.request_id.in_(trace_ids))
    else:
        query = query.where(trace_info.c.timestamp_ms <= max_timestamp_millis).order_by(
            trace_info.c.timestamp_ms, trace_info.c.request_id)
        if max_traces is not None:
            query = query.limit(max_traces)
    doomed = [r.request_id for r in conn.execute(query)]
    if not doomed:
        return 0
    # Children first: SQLite only cascades with foreign keys on, and the order is cheap to state.
    for table, column in ((spans, spans.c.trace_id), (assessments, assessments.c.trace_id),
                          (trace_tags, trace_tags.c.request_id),
                          (trace_request_metadata, trace_request_metadata.c.request_id),
                          (trace_run_links, trace_run_links.c.request_id)):
        conn.execute(delete(table).where(column.in_(doomed)))
    conn.execute(delete(trace_info).where(trace_info.c.request_id.in_(doomed)))
    return len(doomed)


def link_traces_to_run(conn: Connection, trace_ids: object, run_id: object) -> None:
    """LinkTracesToRun: the traces are then found by a search for the run's traces (MLflow's entity
    associations). Linking twice is a no-op; at most 100 traces per request, as MLflow allows."""
    if not isinstance(trace_ids, list) or not all(isinstance(t, str) for t in trace_ids):
        raise invalid_parameter("Invalid value for parameter 'trace_ids': it must be a list of trace ids.")
    if not isinstance(run_id, str) or not run_id:
        raise invalid_parameter("Missing value for required parameter 'run_id'.")
    if len(trace_ids) > MAX_TRACE_IDS_PER_REQUEST:
        raise invalid_parameter(f"Cannot link more than {MAX_TRACE_IDS_PER_REQUEST} traces to a run in a single "
                                f"request. Provided {len(trace_ids)} traces.")
    run = get_run_row(conn, run_id)
    wanted = list(dict.fromkeys(validate_trace_id(t, "trace_ids") for t in trace_ids))
    if not wanted:
        return
    found = set(conn.execute(select(trace_info.c.request_id).where(trace_info.c.request_id.in_(wanted))).scalars())
    missing = [t for t in wanted if t not in found]
    if missing:
        raise trace_not_found(missing[0])
    insert_ignoring_conflicts(conn, trace_run_links, [{"request_id": t, "run_uuid": run.run_uuid} for t in wanted],
                              ["request_id", "run_uuid"])
