"""SQL for one comparison of a parsed MLflow filter (see :mod:`tracking.search.filter`)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func

from tracking.errors import invalid_parameter


def sql_comparison(column: ColumnElement, op: str, value: object) -> ColumnElement[bool]:
    """``column op value`` in SQL; LIKE is case-sensitive on both databases, ILIKE compares lower()."""
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
        return func.lower(column).like(func.lower(value))
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op == "IS NULL":
        return column.is_(None)
    if op == "IS NOT NULL":
        return column.is_not(None)
    raise invalid_parameter(f"Unsupported comparison operator {op!r}.")
