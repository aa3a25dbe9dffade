"""SearchLoggedModels: filter on attributes, metrics, params and tags; datasets; order_by; pages.

The caller's visibility scope is applied inside the query, so counts and page tokens only ever see
the models the caller may see.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, case, exists, func, or_, select

from tracking.db.mlflow3_tables import logged_model_params, logged_model_tags, logged_models
from tracking.db.tables import experiments, metrics
from tracking.errors import invalid_parameter
from tracking.scope import ResourceScope
from tracking.search.filter import AttributeRules, Comparison, parse_filter
from tracking.search.page_token import decode_page_token, encode_page_token, fingerprint
from tracking.search.predicates import compare, experiment_scope_clause
from tracking.store.experiment_checks import parse_experiment_id
from tracking.store.logged_models import STATUS_BY_NAME, load_models

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 50_000
_KINDS = {"metric": "metric", "metrics": "metric", "param": "param", "params": "param", "tag": "tag",
          "tags": "tag", "attribute": "attribute", "attributes": "attribute"}
_ATTRIBUTES = AttributeRules(
    string=frozenset({"model_id", "name", "model_type", "source_run_id", "status", "artifact_location",
                      "status_message"}),
    numeric=frozenset({"creation_timestamp_ms", "last_updated_timestamp_ms"}),
    lists=frozenset({"model_id", "name", "model_type", "source_run_id", "status"}),
    aliases={"creation_time": "creation_timestamp_ms", "creation_timestamp": "creation_timestamp_ms",
             "last_updated_timestamp": "last_updated_timestamp_ms"},
    ops={"status": frozenset({"=", "!=", "IN", "NOT IN"})},
)
_ORDERABLE = _ATTRIBUTES.string | _ATTRIBUTES.numeric | {"experiment_id"}


def _status_value(value: object) -> object:
    # Statuses are stored as numbers; filters name them as MLflow does ("READY", "LOGGED_MODEL_READY").
    if isinstance(value, tuple):
        return tuple(_status_value(v) for v in value)
    name = value if str(value).startswith("LOGGED_MODEL_") else f"LOGGED_MODEL_{value}"
    if name not in STATUS_BY_NAME:
        raise invalid_parameter(f"Invalid logged model status {value!r} in filter.")
    return STATUS_BY_NAME[name]


def _dataset_clause(datasets: list[dict]):
    parts = []
    for d in datasets:
        clause = metrics.c.dataset_name == d["dataset_name"]
        if d.get("dataset_digest"):
            clause = and_(clause, metrics.c.dataset_digest == d["dataset_digest"])
        parts.append(clause)
    return or_(*parts)


def _filter_clauses(comparisons: list[Comparison], datasets: list[dict]) -> list:
    clauses = []
    has_metric_filter = False
    for comp in comparisons:
        if comp.kind == "attribute":
            value = _status_value(comp.value) if comp.key == "status" else comp.value
            clauses.append(compare(logged_models.c[comp.key], comp.op, value))
        elif comp.kind == "metric":
            has_metric_filter = True
            conditions = [metrics.c.model_id == logged_models.c.model_id, metrics.c.key == comp.key,
                          compare(metrics.c.value, comp.op, comp.value)]
            if datasets:
                conditions.append(_dataset_clause(datasets))
            clauses.append(exists().where(*conditions))
        else:
            table, key_col, value_col = (
                (logged_model_params, "param_key", "param_value") if comp.kind == "param"
                else (logged_model_tags, "tag_key", "tag_value"))
            if comp.op == "IS NULL":
                clauses.append(~exists().where(table.c.model_id == logged_models.c.model_id,
                                               table.c[key_col] == comp.key))
                continue
            clauses.append(exists().where(table.c.model_id == logged_models.c.model_id,
                                          table.c[key_col] == comp.key,
                                          compare(table.c[value_col], comp.op, comp.value)))
    if datasets and not has_metric_filter:
        # Datasets alone select the models with any metric computed on one of them.
        clauses.append(exists().where(metrics.c.model_id == logged_models.c.model_id, _dataset_clause(datasets)))
    return clauses


def _order_clauses(order_by: list[dict]):
    """ORDER BY terms (nulls last) and the outer joins they need."""
    terms = []
    joins = []
    has_created = has_id = False
    for index, ob in enumerate(order_by):
        field = ob.get("field_name")
        if not isinstance(field, str) or not field:
            raise invalid_parameter("Each order_by entry needs a field_name.")
        ascending = ob.get("ascending", True)
        if not isinstance(ascending, bool):
            raise invalid_parameter("order_by.ascending must be a boolean.")
        if "." not in field:
            key = _ATTRIBUTES.aliases.get(field, field)
            if key not in _ORDERABLE:
                raise invalid_parameter(f"Invalid order by field name: {field}")
            has_created |= key == "creation_timestamp_ms"
            has_id |= key == "model_id"
            col = logged_models.c[key]
        else:
            entity, name = field.split(".", 1)
            if entity not in ("metrics", "metric"):
                raise invalid_parameter(f"Invalid order by field name: {field}. Only metrics are supported.")
            conditions = [metrics.c.key == name.strip("`"), metrics.c.model_id.is_not(None)]
            if ob.get("dataset_name"):
                conditions.append(metrics.c.dataset_name == ob["dataset_name"])
            if ob.get("dataset_digest"):
                conditions.append(metrics.c.dataset_digest == ob["dataset_digest"])
            # The latest value of the metric per model (by timestamp, then step).
            ranked = (
                select(metrics.c.model_id, metrics.c.value,
                       func.row_number().over(partition_by=metrics.c.model_id,
                                              order_by=[metrics.c.timestamp.desc(), metrics.c.step.desc()])
                       .label("rn"))
                .where(*conditions)
                .subquery()
            )
            latest = select(ranked.c.model_id, ranked.c.value).where(ranked.c.rn == 1).subquery(f"om{index}")
            joins.append((latest, latest.c.model_id == logged_models.c.model_id))
            col = latest.c.value
        terms.append(case((col.is_(None), 1), else_=0).asc())
        terms.append(col.asc() if ascending else col.desc())
    if not has_created:
        terms.append(logged_models.c.creation_timestamp_ms.desc())
    if not has_id:
        terms.append(logged_models.c.model_id.asc())
    return terms, joins


def search_logged_models(conn: Connection, *, experiment_ids: list[str], filter_string: str | None,
                         datasets: list[dict], max_results: int | None, order_by: list[dict],
                         page_token: str | None, scope: ResourceScope) -> tuple[list[dict], str | None]:
    """One page of live models in ``experiment_ids`` that match, and the next page's token."""
    if not experiment_ids:
        raise invalid_parameter("Missing value for required parameter 'experiment_ids'.")
    exp_ids = [parse_experiment_id(e, "experiment_ids") for e in experiment_ids]
    for d in datasets:
        if not isinstance(d.get("dataset_name"), str) or not d["dataset_name"]:
            raise invalid_parameter("`dataset_name` in the `datasets` clause must be specified.")
    limit = DEFAULT_MAX_RESULTS if max_results is None else max_results
    if not 0 < limit <= MAX_RESULTS_LIMIT:
        raise invalid_parameter(f"Invalid value {limit} for parameter 'max_results': "
                                f"it must be between 1 and {MAX_RESULTS_LIMIT}.")
    query_key = fingerprint("logged_models", sorted(exp_ids), filter_string, datasets, order_by, repr(scope))
    offset = decode_page_token(page_token, query_key)
    comparisons = parse_filter(filter_string, kinds=_KINDS, attributes=_ATTRIBUTES)
    clauses = _filter_clauses(comparisons, datasets)
    terms, joins = _order_clauses(order_by)

    source = logged_models.join(experiments, experiments.c.experiment_id == logged_models.c.experiment_id)
    for sub, on in joins:
        source = source.outerjoin(sub, on)
    query = (
        select(logged_models.c.model_id)
        .select_from(source)
        .where(logged_models.c.experiment_id.in_(exp_ids), logged_models.c.lifecycle_stage != "deleted",
               experiment_scope_clause(scope), *clauses)
        .order_by(*terms)
        .offset(offset)
        .limit(limit + 1)
    )
    ids = [row.model_id for row in conn.execute(query)]
    token = encode_page_token(offset + limit, query_key) if len(ids) > limit else None
    return load_models(conn, ids[:limit]), token
