"""One write transaction per request, with database refusals turned into MLflow errors (never a 500)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from tracking.db.engine import SQLITE_BUSY_TIMEOUT_MS
from tracking.errors import MlflowError

log = logging.getLogger("mlgate.tracking")
# Set while a write runs on the event loop (tracking.api.dispatch): on SQLite its transaction must not
# wait for another connection's write lock, so it fails at once with WriteLockBusy instead.
NO_WAIT: ContextVar[bool] = ContextVar("mlgate_sqlite_no_wait", default=False)
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class WriteLockBusy(MlflowError):
    """Another connection holds SQLite's write lock and this transaction was told not to wait."""

    def __init__(self):
        super().__init__("The database is busy; retry the request.", "TEMPORARILY_UNAVAILABLE")


def _is_lock_wait(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


@contextmanager
def write_transaction(engine: Engine, on_conflict: Callable[[], MlflowError] | None = None) -> Iterator[Connection]:
    """``engine.begin()``; a unique-key race becomes ``on_conflict()`` (default 409) and a value the
    database cannot store (e.g. a NUL character on PostgreSQL) becomes a 400. Either way nothing is written.
    """
    no_wait = NO_WAIT.get() and engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            if not no_wait:
                yield conn
            else:
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
                try:
                    yield conn
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    except IntegrityError as exc:
        if on_conflict is not None:
            raise on_conflict() from exc
        raise MlflowError("The request conflicts with a concurrent change; retry it.", "RESOURCE_CONFLICT") from exc
    except DataError as exc:
        raise MlflowError("A value in the request cannot be stored (invalid characters or out of range).",
                          "INVALID_PARAMETER_VALUE") from exc
    except OperationalError as exc:
        if no_wait and _is_lock_wait(exc):
            raise WriteLockBusy() from exc
        raise _busy() from exc


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """``engine.connect()`` for reads; a value the database refuses to compare (e.g. a NUL character
    on PostgreSQL) becomes a 400 instead of a 500.
    """
    try:
        with engine.connect() as conn:
            yield conn
    except DataError as exc:
        raise MlflowError("A value in the request cannot be used (invalid characters or out of range).",
                          "INVALID_PARAMETER_VALUE") from exc
    except OperationalError as exc:
        raise _busy() from exc


def _busy() -> MlflowError:
    # A locked SQLite file past its busy timeout, or a lost database connection: retryable, and the
    # client's HTTP retry policy retries 503. Details stay in the server log, not the response.
    log.warning("database unavailable", exc_info=True)
    return MlflowError("The database is busy or unavailable; retry the request.", "TEMPORARILY_UNAVAILABLE")
