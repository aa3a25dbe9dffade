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
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, revision)
        return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        command.upgrade(_config(connection), revision)


def _upgrade_sqlite(engine: Engine, revision: str) -> None:
    """SQLite changes a table by rebuilding it (copy, drop, rename: Alembic's batch mode). With foreign keys
    enforced, the drop would first delete every row and cascade into the tables that reference it, so the
    pragma is off while migrating (it cannot change inside a transaction), every foreign key is checked
    before the commit, and it is on again before the connection goes back to the pool
    (https://sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes")."""
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        try:
            with connection.begin():
                command.upgrade(_config(connection), revision)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    tables = sorted({row[0] for row in broken})
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere in {tables}; "
                                       "nothing was changed")
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of mlgate knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()
