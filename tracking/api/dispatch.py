"""Where a handler runs: the event loop for cheap work on a local SQLite file, else the thread pool.

A sync FastAPI handler is handed to a worker thread and its answer handed back: two cross-thread
wake-ups (a pipe write and a condition variable) that cost more CPU than reading one run from a local
SQLite file. A *point read* (one resource by key, a bounded number of indexed queries) is therefore
run on the event loop when the database is SQLite: in WAL mode a reader never waits for a writer, so
the loop is held only for the reads themselves. On PostgreSQL every query waits on the network, and
anything unbounded (searches, histories, artifacts) keeps the thread pool.

A *quick write* (a training client's per-step logging: a bounded batch on one run) also runs on the
loop on SQLite, but its transaction is told not to wait for the write lock: when another connection
(a thread-pooled write, another process) holds it, the attempt fails at once, rolls back, and the
handler runs again in the thread pool, where it waits as usual. The loop never sleeps on a lock.

A *search* is CPU-bound Python (building the JSON of up to hundreds of runs) around SQLite work: eight
of them in eight threads share one interpreter lock and cost about twice the CPU each of the same
searches two at a time. Searches therefore run in the thread pool, at most ``SEARCH_CONCURRENCY`` at
once per process; the rest wait their turn in order.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import weakref
from collections.abc import Awaitable, Callable

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.body import Args
from tracking.services import tracking_of
from tracking.store.transaction import NO_WAIT, WriteLockBusy

Handler = Callable[[Request, Args], object]
# Searches running at once per process (the others queue): the cores, and at least two.
SEARCH_CONCURRENCY = max(2, os.cpu_count() or 2)
# A limiter belongs to the event loop it was first used on (tests and embedders may run several loops).
_search_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = weakref.WeakKeyDictionary()


def _as_endpoint(handler: Handler, run: Callable[[Request, Args], Awaitable[object]]) -> Callable:
    """An async endpoint that presents ``handler``'s own signature, so FastAPI resolves the same dependencies."""

    async def endpoint(request: Request, args: Args):
        return await run(request, args)

    endpoint.__signature__ = inspect.signature(handler, eval_str=True)  # resolved in the handler's module
    endpoint.__name__ = handler.__name__
    endpoint.__qualname__ = handler.__qualname__
    endpoint.__doc__ = handler.__doc__
    endpoint.__module__ = handler.__module__
    return endpoint


def point_read(handler: Handler) -> Callable:
    """Wrap a sync ``handler(request, args)`` that reads one resource by key (see the module docstring)."""

    async def run(request: Request, args: Args):
        if tracking_of(request).inline_reads:
            return handler(request, args)
        return await run_in_threadpool(handler, request, args)

    return _as_endpoint(handler, run)


def quick_write(handler: Handler) -> Callable:
    """Wrap a sync ``handler(request, args)`` that writes a bounded batch (see the module docstring).

    The handler must do nothing outside its one write transaction before that transaction commits, so
    a rolled-back attempt can simply be run again.
    """

    async def run(request: Request, args: Args):
        if tracking_of(request).inline_reads:
            token = NO_WAIT.set(True)
            try:
                return handler(request, args)
            except WriteLockBusy:
                pass  # rolled back: wait for the lock in a worker thread instead
            finally:
                NO_WAIT.reset(token)
        return await run_in_threadpool(handler, request, args)

    return _as_endpoint(handler, run)


def search_limiter() -> CapacityLimiter:
    """This event loop's limiter for searches."""
    loop = asyncio.get_running_loop()
    limiter = _search_limiters.get(loop)
    if limiter is None:
        limiter = _search_limiters[loop] = CapacityLimiter(SEARCH_CONCURRENCY)
    return limiter


def search_handler(handler: Handler) -> Callable:
    """Wrap a sync search ``handler(request, args)``: thread pool, ``SEARCH_CONCURRENCY`` at a time."""

    async def run(request: Request, args: Args):
        return await anyio.to_thread.run_sync(functools.partial(handler, request, args), limiter=search_limiter())

    return _as_endpoint(handler, run)
