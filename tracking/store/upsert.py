"""Dialect-specific INSERT variants (``ON CONFLICT``), which SQLite and PostgreSQL spell the same way."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(conn: Connection, table: Table):
    """An INSERT for ``table`` that supports ``on_conflict_do_nothing/update`` on this connection."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}")


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: list[dict], index_elements: list[str]) -> None:
    """Insert ``rows``, silently skipping those whose ``index_elements`` already exist."""
    if rows:
        conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(index_elements=index_elements), rows)
