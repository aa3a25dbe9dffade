"""Statements that read rows for one key or for many, built once in every shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Row, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select

Where = Callable[[ColumnElement], ColumnElement[bool]]
_ONE = bindparam("id")
_MANY = bindparam("ids", expanding=True)
_JSON_LIST = bindparam("ids_json")


def _in_json_list(column: ColumnElement) -> ColumnElement[bool]:
    """SQLite: ``column IN (SELECT value FROM json_each(:ids_json))``, the keys as one JSON text."""
    return column.in_(select(literal_column("value")).select_from(func.json_each(_JSON_LIST)))


def _in_array(column: ColumnElement) -> ColumnElement[bool]:
    """PostgreSQL: ``column = ANY(:ids_array)``, the keys as one array parameter."""
    return column == any_(bindparam("ids_array", type_=ARRAY(column.type)))


@dataclass(frozen=True)
class ByIds:
    """A SELECT filtered on one column by ``= :id`` (one key) or by a set of keys (several).

    All are compiled once and cached by SQLAlchemy. An expanding ``IN (:ids)`` renders its parameter list
    again on every execution (for a page of 100 runs, six statements of 100 parameters each: about a
    third of reading the page), so SQLite and PostgreSQL get the keys as one parameter instead (a JSON
    list read by ``json_each``; an array), whose statement is rendered once. Other dialects keep the IN.
    """

    one: Select
    many: Select
    sqlite_many: Select
    postgresql_many: Select

    def execute(self, conn: Connection, ids: Sequence[str | int]) -> list[Row]:
        """The rows for ``ids`` (no query for none)."""
        if not ids:
            return []
        if len(ids) == 1:
            return conn.execute(self.one, {"id": ids[0]}).all()
        dialect = conn.dialect.name
        if dialect == "sqlite":
            return conn.execute(self.sqlite_many, {"ids_json": json.dumps(list(ids))}).all()
        if dialect == "postgresql":
            return conn.execute(self.postgresql_many, {"ids_array": list(ids)}).all()
        return conn.execute(self.many, {"ids": list(ids)}).all()


def by_ids(build: Callable[[Where], Select]) -> ByIds:
    """``build(where)`` returns the statement given ``where(column)``, the key filter to apply."""
    return ByIds(one=build(lambda column: column == _ONE), many=build(lambda column: column.in_(_MANY)),
                 sqlite_many=build(_in_json_list), postgresql_many=build(_in_array))
