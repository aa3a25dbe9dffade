"""Readiness: may a load balancer send this process traffic? The database and Redis must answer.

``/health`` (liveness) only says the process answers; ``/ready`` also runs ``SELECT 1`` on the app's own
connection pool and ``PING`` on every Redis the server uses (``--redis-url``, the rate-limit storage).
The answer names each check and its state, never a URL, host or error text: probes are anonymous.
The result is kept for a second, so a flood of probes costs at most one check per second per process.
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

    def report(self) -> Report:
        """The current report (blocking I/O: call from a worker thread)."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < CACHE_SECONDS:
                return self._last[1]
            checks = {"database": self._database()}
            if self.redis_urls:
                checks["redis"] = OK if all(self._redis(u) for u in self.redis_urls) else DOWN
            result = Report(checks)
            self._last = (now, result)
            return result

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
