"""One write transaction per request, with database refusals turned into MLflow errors (never a 500)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from tracking.errors import MlflowError

log = logging.getLogger("mlgate.tracking")


@contextmanager
def write_transaction(engine: Engine, on_conflict: Callable[[], MlflowError] | None = None) -> Iterator[Connection]:
    """``engine.begin()``; a unique-key race becomes ``on_conflict()`` (default 409) and a value the
    database cannot store (e.g. a NUL character on PostgreSQL) becomes a 400. Either way nothing is written.
    """
    try:
        with engine.begin() as conn:
            yield conn
    except IntegrityError as exc:
        if on_conflict is not None:
            raise on_conflict() from exc
        raise MlflowError("The request conflicts with a concurrent change; retry it.", "RESOURCE_CONFLICT") from exc
    except DataError as exc:
        raise MlflowError("A value in the request cannot be stored (invalid characters or out of range).",
                          "INVALID_PARAMETER_VALUE") from exc
    except OperationalError as exc:
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
