"""SQL building blocks shared by the searches: one comparison, and the visibility scope's conditions."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, String, bindparam, cast, select

from tracking.db.tables import experiments
from tracking.errors import invalid_parameter
from tracking.scope import ResourceScope


def compare(column: ColumnElement, op: str, value: object) -> ColumnElement[bool]:
    """``column <op> value`` for a parsed filter operator (LIKE is case-sensitive, ILIKE is not)."""
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "LIKE":
        return column.like(value)
    if op == "ILIKE":
        # SQLAlchemy renders ILIKE on PostgreSQL and lower(x) LIKE lower(y) on SQLite.
        return column.ilike(value)
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op == "IS NULL":
        return column.is_(None)
    if op == "IS NOT NULL":
        return column.is_not(None)
    raise invalid_parameter(f"Invalid filter: unsupported operator {op!r}.")


def integer_ids_in(column: ColumnElement, ids: list[int]) -> ColumnElement[bool]:
    """``column IN (ids)`` with the integers inlined at execution time.

    A search over every experiment can name tens of thousands of ids; as bound parameters they would
    exceed SQLite's and PostgreSQL's per-statement limits. The values are Python ints, so inlining them
    is safe.
    """
    if any(type(i) is not int for i in ids):
        raise TypeError("integer_ids_in takes ints only")
    return column.in_(bindparam("ids", list(ids), expanding=True, literal_execute=True, unique=True))


def experiment_scope_clause(scope: ResourceScope) -> ColumnElement[bool]:
    """The scope's condition on the experiments table.

    Scopes name experiments by their API id, a string; the table's id is an integer, so the column
    is cast to text for the comparison (exact for integers on SQLite and PostgreSQL alike).
    """
    return scope.clause(cast(experiments.c.experiment_id, String), experiments.c.name, experiments.c.workspace)


def visible_experiment_ids(scope: ResourceScope, requested: list[int]) -> Select | None:
    """A SELECT of the requested experiment ids the scope shows, or None when it shows everything."""
    if unrestricted(scope):
        return None
    return (
        select(experiments.c.experiment_id)
        .where(integer_ids_in(experiments.c.experiment_id, requested), experiment_scope_clause(scope))
    )


def scope_fingerprint(scope: ResourceScope) -> dict[str, object]:
    """The scope as JSON-serializable data, so a page token is bound to what the caller could see."""
    return {
        "u": scope.unrestricted,
        "i": sorted(scope.ids),
        "n": list(scope.name_patterns),
        "di": sorted(scope.denied_ids),
        "dn": list(scope.denied_name_patterns),
        "w": scope.workspace,
        "x": None if scope.within is None else scope_fingerprint(scope.within),
    }


def unrestricted(scope: ResourceScope) -> bool:
    """Whether the scope filters nothing (so no condition needs to be added)."""
    return (scope.unrestricted and not scope.denied_ids and not scope.denied_name_patterns
            and scope.workspace is None and scope.within is None)
