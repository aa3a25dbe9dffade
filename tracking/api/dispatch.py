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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.body import Args
from tracking.services import tracking_of
from tracking.store.transaction import NO_WAIT, WriteLockBusy


def point_read(handler: Callable[[Request, Args], object]) -> Callable:
    """Wrap a sync ``handler(request, args)`` that reads one resource by key (see the module docstring).

    The wrapper presents the handler's own signature, so FastAPI resolves the same ``args`` dependency.
    """

    async def endpoint(request: Request, args: Args):
        if tracking_of(request).inline_reads:
            return handler(request, args)
        return await run_in_threadpool(handler, request, args)

    endpoint.__signature__ = inspect.signature(handler, eval_str=True)  # resolved in the handler's module
    endpoint.__name__ = handler.__name__
    endpoint.__qualname__ = handler.__qualname__
    endpoint.__doc__ = handler.__doc__
    endpoint.__module__ = handler.__module__
    return endpoint


def quick_write(handler: Callable[[Request, Args], object]) -> Callable:
    """Wrap a sync ``handler(request, args)`` that writes a bounded batch (see the module docstring).

    The handler must do nothing outside its one write transaction before that transaction commits, so
    a rolled-back attempt can simply be run again.
    """

    async def endpoint(request: Request, args: Args):
        if tracking_of(request).inline_reads:
            token = NO_WAIT.set(True)
            try:
                return handler(request, args)
            except WriteLockBusy:
                pass  # rolled back: wait for the lock in a worker thread instead
            finally:
                NO_WAIT.reset(token)
        return await run_in_threadpool(handler, request, args)

    endpoint.__signature__ = inspect.signature(handler, eval_str=True)
    endpoint.__name__ = handler.__name__
    endpoint.__qualname__ = handler.__qualname__
    endpoint.__doc__ = handler.__doc__
    endpoint.__module__ = handler.__module__
    return endpoint
