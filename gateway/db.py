"""Schema migrations (Alembic), applied on start and by ``mlgate db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The PostgreSQL advisory lock every mlgate process takes before migrating (the first 8 bytes of
# sha256(b"mlgate-migrations"), signed): one application-wide constant, so concurrent starts serialize.
MIGRATION_LOCK_KEY = -4771320119772152907


def _config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` in one transaction, one process at a time.

    Every server migrates on start, and several instances may start at once on one PostgreSQL database.
    A transaction-level advisory lock, taken before Alembic reads the current revision, makes them take
    turns: the first migrates and commits (which releases the lock), the others then find the schema at
    ``revision`` and change nothing. SQLite serializes writers by itself (its busy timeout waits).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        command.upgrade(_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of mlgate knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()
