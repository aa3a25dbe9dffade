"""Run a store function in one database transaction on a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.services import tracking_of

T = TypeVar("T")


async def in_transaction(request: Request, work: Callable[[Connection], T]) -> T:
    """``work(conn)`` inside ``engine.begin()``: committed when it returns, rolled back when it raises.

    Handlers are ``async`` only to read the body once through ``request_args``; the SQL runs in the
    thread pool so the event loop never waits on the database.
    """
    engine = tracking_of(request).engine

    def run() -> T:
        with engine.begin() as conn:
            return work(conn)

    return await run_in_threadpool(run)
