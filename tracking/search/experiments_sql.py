"""experiments/search as one SQL query: filter, visibility scope, order and page -> experiment ids."""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace

from sqlalchemy import ColumnElement, Select, select

from tracking.db.tables import experiment_tags, experiments
from tracking.errors import invalid_parameter
from tracking.scope import ResourceScope
from tracking.search.filter import LIST_OPS, AttributeRules, Comparison, parse_filter
from tracking.search.order_by import OrderKey, parse_order_by
from tracking.search.page_token import fingerprint
from tracking.search.predicates import compare, experiment_scope_clause, scope_fingerprint, unrestricted

EXPERIMENT_KINDS = {"attribute": "attribute", "attributes": "attribute", "tag": "tag", "tags": "tag"}
EXPERIMENT_ATTRIBUTES = AttributeRules(
    string=frozenset({"name", "experiment_id"}),
    numeric=frozenset({"creation_time", "last_update_time"}),
    lists=frozenset({"experiment_id"}),
    # Ids are nominal: equality and lists only, as MLflow allows.
    ops={"experiment_id": frozenset({"=", "!="}) | LIST_OPS},
)
EXPERIMENT_COLUMNS = {
    "name": experiments.c.name,
    "experiment_id": experiments.c.experiment_id,
    "creation_time": experiments.c.creation_time,
    "last_update_time": experiments.c.last_update_time,
}
DEFAULT_ORDER = ("creation_time DESC", "experiment_id ASC")
VIEW_STAGES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}


@dataclass(frozen=True)
class ExperimentSearch:
    """A validated experiments/search request (everything but the page)."""

    comparisons: tuple[Comparison, ...]
    order: tuple[OrderKey, ...]
    view_type: str

    def fingerprint(self, scope: ResourceScope) -> str:
        """What a page token of this search is bound to."""
        return fingerprint(
            "experiments", [astuple(c) for c in self.comparisons], [astuple(o) for o in self.order],
            self.view_type, scope_fingerprint(scope),
        )


def _experiment_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise invalid_parameter(f"Invalid filter: experiment_id {value!r} is not an experiment id.")
    return int(value)


def build_experiment_search(filter_text: str | None, order_by: list[str], view_type: str) -> ExperimentSearch:
    """Parse and validate an experiments/search request; every problem is a 400 naming it."""
    comparisons = []
    for c in parse_filter(filter_text, kinds=EXPERIMENT_KINDS, attributes=EXPERIMENT_ATTRIBUTES):
        if c.kind == "attribute" and c.key == "experiment_id":
            # The API's ids are strings; the column is an integer.
            value = tuple(map(_experiment_id, c.value)) if isinstance(c.value, tuple) else _experiment_id(c.value)
            c = replace(c, value=value)
        comparisons.append(c)
    order = parse_order_by(list(order_by) or list(DEFAULT_ORDER), kinds=EXPERIMENT_KINDS,
                           attributes=EXPERIMENT_ATTRIBUTES)
    for key in order:
        if key.kind != "attribute":
            raise invalid_parameter(
                f"Invalid order_by: experiments can be ordered by {', '.join(sorted(EXPERIMENT_COLUMNS))} only, "
                f"not by {key.kind} {key.key!r}."
            )
    return ExperimentSearch(tuple(comparisons), tuple(order), view_type)


def condition(c: Comparison) -> ColumnElement[bool]:
    """One parsed comparison as a condition on the experiments table."""
    if c.kind == "attribute":
        return compare(EXPERIMENT_COLUMNS[c.key], c.op, c.value)
    has_key = select(experiment_tags.c.experiment_id).where(experiment_tags.c.key == c.key)
    if c.op == "IS NULL":
        return experiments.c.experiment_id.not_in(has_key)
    if c.op == "IS NOT NULL":
        return experiments.c.experiment_id.in_(has_key)
    return experiments.c.experiment_id.in_(has_key.where(compare(experiment_tags.c.value, c.op, c.value)))


def experiment_ids_query(search: ExperimentSearch, scope: ResourceScope, offset: int, limit: int) -> Select:
    """SELECT the ids of one page of matching experiments (``limit`` rows from ``offset``) in order."""
    where = [experiments.c.lifecycle_stage.in_(VIEW_STAGES[search.view_type]),
             *(condition(c) for c in search.comparisons)]
    if not unrestricted(scope):
        where.append(experiment_scope_clause(scope))
    clauses = [
        EXPERIMENT_COLUMNS[k.key].asc() if k.ascending else EXPERIMENT_COLUMNS[k.key].desc() for k in search.order
    ]
    if not any(k.key == "experiment_id" for k in search.order):
        clauses.append(experiments.c.experiment_id.desc())  # MLflow's tie-breaker
    return select(experiments.c.experiment_id).where(*where).order_by(*clauses).offset(offset).limit(limit)
