"""Engine construction: one place that knows the dialect quirks of SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalize_database_uri(uri: str) -> str:
    """Pick psycopg 3 for ``postgresql://`` URIs (SQLAlchemy would otherwise default to psycopg2)."""
    url = make_url(uri)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


# How long opening a PostgreSQL connection may take (unless the URI sets connect_timeout itself).
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# How long a SQLite statement waits for another connection's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _in_memory(url) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def make_engine(uri: str, *, pool_size: int = 10, max_overflow: int | None = None, pool_timeout: float = 30.0,
                statement_timeout_ms: int | None = None) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URI with the pragmas/settings mlgate relies on."""
    uri = normalize_database_uri(uri)
    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        # A file database gets the same pool as PostgreSQL: SQLAlchemy's default (5 + 10 overflow) closes
        # every overflow connection on return, and reopening one re-runs the pragmas below.
        options = {} if _in_memory(url) else {
            "pool_size": pool_size, "max_overflow": pool_size if max_overflow is None else max_overflow,
            "pool_timeout": pool_timeout}
        engine = create_engine(uri, connect_args={"check_same_thread": False, "timeout": 30}, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            # WAL lets readers proceed during a write; busy_timeout waits instead of failing.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # MLflow's LIKE is case-sensitive; SQLite's is not unless told so. ILIKE uses lower().
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()

        return engine
    connect_args: dict = {}
    if "connect_timeout" not in url.query:
        # libpq waits forever for a server that accepts the TCP connection but never answers.
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        uri, pool_size=pool_size, max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=pool_timeout, pool_pre_ping=True, connect_args=connect_args
    )
