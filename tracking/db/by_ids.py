"""Statements that read rows for one key or for many, built once in both shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Row, bindparam
from sqlalchemy.sql import Select

Where = Callable[[ColumnElement], ColumnElement[bool]]
_ONE = bindparam("id")
_MANY = bindparam("ids", expanding=True)


@dataclass(frozen=True)
class ByIds:
    """A SELECT filtered on one column by ``= :id`` (one key) or ``IN (:ids)`` (several).

    Both are compiled once and cached by SQLAlchemy; the expanding IN renders its parameter list again
    on every execution, which for the commonest read (one run, one experiment) is pure overhead.
    """

    one: Select
    many: Select

    def execute(self, conn: Connection, ids: Sequence[str | int]) -> list[Row]:
        """The rows for ``ids`` (no query for none)."""
        if not ids:
            return []
        if len(ids) == 1:
            return conn.execute(self.one, {"id": ids[0]}).all()
        return conn.execute(self.many, {"ids": list(ids)}).all()


def by_ids(build: Callable[[Where], Select]) -> ByIds:
    """``build(where)`` returns the statement given ``where(column)``, the key filter to apply."""
    return ByIds(one=build(lambda column: column == _ONE), many=build(lambda column: column.in_(_MANY)))
