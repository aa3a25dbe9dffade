"""Dialect-specific INSERT variants (``ON CONFLICT``), which SQLite and PostgreSQL spell the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

# Statements are immutable, so each is built once per dialect: building SQLAlchemy expressions
# costs more than executing a small cached statement.
_STATEMENTS: dict[tuple[str, Any], Any] = {}


def dialect_insert(conn: Connection, table: Table):
    """An INSERT for ``table`` that supports ``on_conflict_do_nothing/update`` on this connection."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}")


def statement_for(conn: Connection, key: Any, build: Callable[[Connection], Any]):
    """The statement ``build(conn)`` made once per dialect and ``key``, then reused."""
    cache_key = (conn.dialect.name, key)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        stmt = _STATEMENTS[cache_key] = build(conn)
    return stmt


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: list[dict], index_elements: list[str]) -> None:
    """Insert ``rows``, silently skipping those whose ``index_elements`` already exist."""
    if rows:
        stmt = statement_for(conn, ("insert-ignore", table.name, tuple(index_elements)),
                             lambda c: dialect_insert(c, table).on_conflict_do_nothing(index_elements=index_elements))
        conn.execute(stmt, rows)
