"""Readiness: may a load balancer send this process traffic? The database and Redis must answer.

``/health`` (liveness) only says the process answers; ``/ready`` also runs ``SELECT 1`` on the app's own
connection pool and ``PING`` on every Redis the server uses (``--redis-url``, the rate-limit storage).
The answer names each check and its state, never a URL, host or error text: probes are anonymous.
The result is kept for a second, so a flood of probes costs at most one check per second per process.
Only one check runs at a time: a probe arriving while it runs does not wait for it (a hung database would
otherwise pile up one blocked thread per anonymous probe). It gets the previous answer while the running
check is younger than ``CHECK_TIMEOUT_SECONDS``, and after that an answer naming the dependency the check
is stuck on as unavailable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, text

from gateway.middleware.ratelimit import redact_url

log = logging.getLogger("mlgate.ready")
OK = "ok"
DOWN = "unavailable"
CHECK_TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Report:
    """Each dependency's state; ready when all are ``ok``."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        """Whether every check passed."""
        return all(state == OK for state in self.checks.values())

    @property
    def down(self) -> list[str]:
        """The names of the failed checks."""
        return [name for name, state in self.checks.items() if state != OK]


class Readiness:
    """Checks the database engine and the Redis URLs; thread-safe, cached for ``CACHE_SECONDS``."""

    def __init__(self, engine: Engine, redis_urls: Iterable[str], clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.redis_urls = tuple(dict.fromkeys(u for u in redis_urls if u))
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Report] | None = None
        # The check in progress: when it started and what it has found so far (None: no check running).
        self._running: tuple[float, dict[str, str]] | None = None

    def _names(self) -> list[str]:
        return ["database", "redis"] if self.redis_urls else ["database"]

    def report(self) -> Report:
        """The current report (blocking I/O: call from a worker thread); never waits for another check."""
        last = self._last
        if last is not None and self._clock() - last[0] < CACHE_SECONDS:
            return last[1]
        if not self._lock.acquire(blocking=False):
            return self._while_checking()
        try:
            now = self._clock()
            if self._last is not None and now - self._last[0] < CACHE_SECONDS:
                return self._last[1]
            found: dict[str, str] = {}
            self._running = (now, found)
            found["database"] = self._database()
            if self.redis_urls:
                found["redis"] = OK if all(self._redis(u) for u in self.redis_urls) else DOWN
            result = Report(dict(found))
            self._last = (now, result)
            return result
        finally:
            self._running = None
            self._lock.release()

    def _while_checking(self) -> Report:
        """The answer while another thread's check runs: the last one, or what that check is stuck on."""
        running, last = self._running, self._last
        if running is None:  # it finished in between
            return last[1] if last is not None else Report({name: DOWN for name in self._names()})
        started, found = running
        if last is not None and self._clock() - started < CHECK_TIMEOUT_SECONDS:
            return last[1]
        done = dict(found)
        # The dependency being checked now has not answered in time; one never checked is not known to work.
        return Report({name: done.get(name, DOWN) for name in self._names()})

    def _database(self) -> str:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return OK
        except Exception as exc:  # any failure means "not ready"; the detail goes to the log only
            log.warning("readiness: database check failed (%s)", type(exc).__name__)
            return DOWN

    def _redis(self, url: str) -> bool:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                                      socket_timeout=CHECK_TIMEOUT_SECONDS)
        try:
            return bool(client.ping())
        except redis.RedisError as exc:
            log.warning("readiness: redis check failed for %s (%s)", redact_url(url), type(exc).__name__)
            return False
        finally:
            client.close()
