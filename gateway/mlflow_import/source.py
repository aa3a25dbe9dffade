"""Open an MLflow database read-only and reflect its tables (the schema differs between MLflow versions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.request import pathname2url

from sqlalchemy import Engine, MetaData, Table, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracking.db.engine import normalize_database_uri

# MLflow's workspace feature (3.x) scopes names by workspace; mlgate has one namespace, MLflow's default.
DEFAULT_WORKSPACE = "default"


class SourceError(Exception):
    """The MLflow database cannot be opened or is not an MLflow database; the message says which."""


def open_read_only(uri: str, option: str) -> Engine:
    """An engine on ``uri`` that cannot write: SQLite files open with ``mode=ro`` (no journal is created),
    PostgreSQL sessions with ``default_transaction_read_only``.
    """
    try:
        url = make_url(normalize_database_uri(uri))
    except ArgumentError:
        raise SourceError(f"{option}: {uri!r} is not a database URI (sqlite:///path.db or postgresql://...).") from None
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            raise SourceError(f"{option}: no SQLite file at {url.database or '(empty path)'!r}.")
        target = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
        return create_engine("sqlite://", creator=lambda: sqlite3.connect(target, uri=True, check_same_thread=False))
    if url.get_backend_name() == "postgresql":
        # Every transaction read-only: the import must never change the MLflow database.
        return create_engine(url.render_as_string(hide_password=False), pool_size=2,
                             connect_args={"options": "-c default_transaction_read_only=on"})
    raise SourceError(f"{option}: only sqlite:/// and postgresql:// MLflow databases can be imported.")


def reflect(engine: Engine, wanted: tuple[str, ...], required: tuple[str, ...], option: str) -> dict[str, Table]:
    """The ``wanted`` tables that exist, reflected; SourceError naming every missing ``required`` table."""
    try:
        present = set(inspect(engine).get_table_names())
    except Exception as exc:
        raise SourceError(f"{option}: cannot read the database ({exc.__class__.__name__}).") from None
    missing = [name for name in required if name not in present]
    if missing:
        raise SourceError(f"{option}: not an MLflow database of this kind; missing tables: {', '.join(missing)}.")
    metadata = MetaData()
    metadata.reflect(bind=engine, only=[name for name in wanted if name in present])
    return dict(metadata.tables)


def in_default_workspace(table: Table, row) -> bool:
    """Whether a row belongs to MLflow's default workspace (tables without the column always do)."""
    if "workspace" not in table.c:
        return True
    return row.workspace in (None, DEFAULT_WORKSPACE)
