"""Trace metrics for the experiment overview's charts (MLflow's QueryTraceMetrics), from stored traces.

Served: the TRACES view's ``trace_count`` (COUNT) and ``latency`` (the traces' execution time: COUNT, SUM,
AVG, MIN, MAX, PERCENTILE), over a time range, optionally in time buckets (``time_interval_seconds``, the
``time_bucket`` dimension as an ISO 8601 UTC time, as MLflow answers). Anything else (span and assessment
views, token counts, other dimensions, filters) has no data points here, which the charts show as "no data".
The caller's access is checked per experiment by the authorizer (READ on every one named), so every trace
of those experiments may be counted. At most ``MAX_TRACES`` traces are read per query.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from tracking.db.mlflow3_tables import trace_info
from tracking.errors import invalid_parameter

MAX_TRACES = 100_000
MAX_BUCKETS = 10_000
TIME_BUCKET = "time_bucket"
METRICS = {"trace_count", "latency"}
AGGREGATIONS = {"COUNT", "SUM", "AVG", "MIN", "MAX", "PERCENTILE"}


def _aggregation_names(aggregations: list[dict]) -> list[tuple[str, str, float | None]]:
    """(label, type, percentile) per requested aggregation; MLflow labels a percentile ``P<value>``."""
    found = []
    for agg in aggregations:
        kind = agg.get("aggregation_type")
        if kind not in AGGREGATIONS:
            raise invalid_parameter(f"Invalid aggregation_type {str(kind)[:40]!r}.")
        value = agg.get("percentile_value")
        if kind == "PERCENTILE":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 100:
                raise invalid_parameter("Percentile value must be between 0 and 100.")
            found.append((f"P{float(value)}", kind, float(value)))
        elif value is not None:
            raise invalid_parameter("Percentile value is only allowed for PERCENTILE aggregation type.")
        else:
            found.append((kind, kind, None))
    return found


def _percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _values(samples: list[float], count: int, aggregations) -> dict[str, float]:
    values: dict[str, float] = {}
    ordered = sorted(samples)
    for label, kind, p in aggregations:
        if kind == "COUNT":
            values[label] = float(count)
        elif not ordered:
            continue
        elif kind == "SUM":
            values[label] = float(sum(ordered))
        elif kind == "AVG":
            values[label] = sum(ordered) / len(ordered)
        elif kind == "MIN":
            values[label] = float(ordered[0])
        elif kind == "MAX":
            values[label] = float(ordered[-1])
        else:
            values[label] = float(_percentile(ordered, p))
    return values


def query_trace_metrics(conn: Connection, *, experiment_ids: list[int], view_type: object, metric_name: object,
                        aggregations: list[dict], dimensions: list[str], filters: list[str],
                        time_interval_seconds: int | None, start_time_ms: int | None,
                        end_time_ms: int | None) -> list[dict]:
    """MLflow's data points for the metrics served here; none for the others."""
    labels = _aggregation_names(aggregations)
    if not labels:
        raise invalid_parameter("Missing value for required parameter 'aggregations'.")
    if time_interval_seconds is not None and time_interval_seconds <= 0:
        raise invalid_parameter("time_interval_seconds must be a positive integer.")
    if view_type != "TRACES" or metric_name not in METRICS or dimensions or filters:
        return []
    if time_interval_seconds is not None and start_time_ms is not None and end_time_ms is not None \
            and (end_time_ms - start_time_ms) // (time_interval_seconds * 1000) > MAX_BUCKETS:
        raise invalid_parameter(f"The time range holds more than {MAX_BUCKETS} buckets of that interval.")
    query = select(trace_info.c.timestamp_ms, trace_info.c.execution_time_ms).where(
        trace_info.c.experiment_id.in_(experiment_ids))
    if start_time_ms is not None:
        query = query.where(trace_info.c.timestamp_ms >= start_time_ms)
    if end_time_ms is not None:
        query = query.where(trace_info.c.timestamp_ms <= end_time_ms)
    rows = conn.execute(query.order_by(trace_info.c.timestamp_ms.desc()).limit(MAX_TRACES)).all()
    counts: dict[int | None, int] = defaultdict(int)
    samples: dict[int | None, list[float]] = defaultdict(list)
    size = time_interval_seconds * 1000 if time_interval_seconds else None
    for row in rows:
        bucket = row.timestamp_ms // size * size if size else None
        counts[bucket] += 1
        if row.execution_time_ms is not None:
            samples[bucket].append(float(row.execution_time_ms))
    points = []
    for bucket in sorted(counts, key=lambda b: b or 0):
        if metric_name == "trace_count":
            values = {label: float(counts[bucket]) for label, kind, _ in labels if kind == "COUNT"}
        else:
            values = _values(samples[bucket], len(samples[bucket]), labels)
        if not values:
            continue
        point: dict = {"metric_name": metric_name, "values": values}
        if bucket is not None:
            point["dimensions"] = {TIME_BUCKET: datetime.fromtimestamp(bucket / 1000, tz=UTC).isoformat()}
        points.append(point)
    return points
