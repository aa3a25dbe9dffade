"""SearchTracesV3: filter on trace attributes, tags and metadata; order_by; pages; visibility scope.

Filter grammar as MLflow's ``SearchTraceUtils`` accepts it (attribute, tag and request_metadata
identifiers with their aliases). Span, assessment and full-text filters are refused with a 400 that
says so rather than silently ignored.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, exists, func, or_, select

from tracking.db.mlflow3_tables import trace_info, trace_request_metadata, trace_run_links, trace_tags
from tracking.db.tables import experiments
from tracking.errors import invalid_parameter
from tracking.scope import ResourceScope
from tracking.search.filter import (
    ALL_OPS,
    KIND_RULES,
    NULL_OPS,
    STRING_OPS,
    AttributeRules,
    Comparison,
    KindRule,
    parse_filter,
)
from tracking.search.order_by import parse_order_by
from tracking.search.page_token import decode_page_token, encode_page_token, fingerprint
from tracking.search.predicates import compare, experiment_scope_clause
from tracking.store.experiment_checks import parse_experiment_id
from tracking.store.traces import TRACE_NAME_TAG, load_trace_infos

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 500  # MLflow's handler refuses more than 500 per page
SOURCE_RUN_KEY = "mlflow.sourceRun"
_KINDS = {
    "tag": "tag", "tags": "tag",
    "request_metadata": "metadata", "metadata": "metadata",
    "attribute": "attribute", "attributes": "attribute", "trace": "attribute",
    "span": "unsupported", "feedback": "unsupported", "expectation": "unsupported", "issue": "unsupported",
}
_RULES = {**KIND_RULES, "metadata": KindRule(STRING_OPS | NULL_OPS, "string"),
          "unsupported": KindRule(ALL_OPS, "any")}
_ATTRIBUTES = AttributeRules(
    string=frozenset({"request_id", "status", "client_request_id", "name", "run_id"}),
    numeric=frozenset({"timestamp_ms", "execution_time_ms", "end_time_ms"}),
    lists=frozenset({"request_id", "status", "client_request_id", "name", "run_id"}),
    aliases={"trace_id": "request_id", "state": "status", "timestamp": "timestamp_ms",
             "request_time": "timestamp_ms", "execution_time": "execution_time_ms",
             "execution_duration": "execution_time_ms", "end_time": "end_time_ms"},
)
_ORDER_KINDS = {"attribute": "attribute", "attributes": "attribute", "trace": "attribute", "tag": "tag",
                "tags": "tag", "request_metadata": "metadata", "metadata": "metadata"}


def _end_time():
    return trace_info.c.timestamp_ms + func.coalesce(trace_info.c.execution_time_ms, 0)


def _pair_exists(table, key: str, comp: Comparison):
    base = [table.c.request_id == trace_info.c.request_id, table.c.key == key]
    if comp.op == "IS NULL":
        return ~exists().where(*base)
    if comp.op == "IS NOT NULL":
        return exists().where(*base)
    return exists().where(*base, compare(table.c.value, comp.op, comp.value))


def _clause(comp: Comparison):
    if comp.kind == "unsupported":
        raise invalid_parameter(f"Invalid filter: filtering traces by {comp.key!r} of spans or assessments is "
                                "not supported by this server.")
    if comp.kind == "tag":
        return _pair_exists(trace_tags, comp.key, comp)
    if comp.kind == "metadata":
        return _pair_exists(trace_request_metadata, comp.key, comp)
    if comp.key == "name":
        return _pair_exists(trace_tags, TRACE_NAME_TAG, comp)
    if comp.key == "run_id":
        by_metadata = _pair_exists(trace_request_metadata, SOURCE_RUN_KEY, comp)
        if comp.op not in ("=", "IN"):
            return by_metadata
        # MLflow: a run's traces are those its metadata names and those linked to it (LinkTracesToRun).
        linked = exists().where(trace_run_links.c.request_id == trace_info.c.request_id,
                                compare(trace_run_links.c.run_uuid, comp.op, comp.value))
        return or_(by_metadata, linked)
    column = _end_time() if comp.key == "end_time_ms" else trace_info.c[comp.key]
    return compare(column, comp.op, comp.value)


def _order_terms(order_by: list[str]):
    keys = parse_order_by(order_by, kinds=_ORDER_KINDS, attributes=_ATTRIBUTES)
    terms = []
    for index, key in enumerate(keys):
        if key.kind == "attribute" and key.key not in ("name", "run_id"):
            column = _end_time() if key.key == "end_time_ms" else trace_info.c[key.key]
        else:
            table = trace_request_metadata if key.kind == "metadata" or key.key == "run_id" else trace_tags
            tag_key = {"name": TRACE_NAME_TAG, "run_id": SOURCE_RUN_KEY}.get(key.key, key.key)
            alias = table.alias(f"ob{index}")
            column = (select(alias.c.value)
                      .where(alias.c.request_id == trace_info.c.request_id, alias.c.key == tag_key)
                      .scalar_subquery())
        terms.append(column.asc() if key.ascending else column.desc())
    if not any(k.kind == "attribute" and k.key == "timestamp_ms" for k in keys):
        terms.append(trace_info.c.timestamp_ms.desc())
    terms.append(trace_info.c.request_id.asc())
    return terms


def search_traces(conn: Connection, *, experiment_ids: list[str], filter_string: str | None,
                  max_results: int | None, order_by: list[str], page_token: str | None,
                  scope: ResourceScope) -> tuple[list[dict], str | None]:
    """One page of trace infos in ``experiment_ids`` matching the filter, and the next page's token."""
    if not experiment_ids:
        raise invalid_parameter("Missing value for required parameter 'locations': name at least one experiment.")
    exp_ids = [parse_experiment_id(e, "locations.mlflow_experiment.experiment_id") for e in experiment_ids]
    limit = DEFAULT_MAX_RESULTS if max_results is None else max_results
    if not 0 < limit <= MAX_RESULTS_LIMIT:
        raise invalid_parameter(f"Invalid value {limit} for parameter 'max_results' supplied: "
                                f"it must be between 1 and {MAX_RESULTS_LIMIT}.")
    comparisons = parse_filter(filter_string, kinds=_KINDS, attributes=_ATTRIBUTES, rules=_RULES)
    clauses = [_clause(c) for c in comparisons]
    terms = _order_terms(order_by)
    query_key = fingerprint("traces", sorted(exp_ids), filter_string, order_by, repr(scope))
    offset = decode_page_token(page_token, query_key)
    query = (
        select(trace_info.c.request_id)
        .select_from(trace_info.join(experiments, experiments.c.experiment_id == trace_info.c.experiment_id))
        .where(and_(trace_info.c.experiment_id.in_(exp_ids),
                    experiment_scope_clause(scope), *clauses))
        .order_by(*terms)
        .offset(offset)
        .limit(limit + 1)
    )
    ids = [r.request_id for r in conn.execute(query)]
    token = encode_page_token(offset + limit, query_key) if len(ids) > limit else None
    return load_trace_infos(conn, ids[:limit]), token


def visible_trace_ids(conn: Connection, trace_ids: list[str], scope: ResourceScope) -> list[str]:
    """The subset of ``trace_ids`` that exist in experiments the caller may see."""
    if not trace_ids:
        return []
    query = (select(trace_info.c.request_id)
             .select_from(trace_info.join(experiments, experiments.c.experiment_id == trace_info.c.experiment_id))
             .where(trace_info.c.request_id.in_(trace_ids),
                    experiment_scope_clause(scope)))
    found = {r.request_id for r in conn.execute(query)}
    return [t for t in dict.fromkeys(trace_ids) if t in found]
