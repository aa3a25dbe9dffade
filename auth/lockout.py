"""Failed-attempt throttling per username and per client address, shared through the limits storage.

Failures are counted in a window. Once a key reaches its limit it is locked for ``base_seconds``; each
further failure after a lock ends doubles the next lock (exponential backoff) up to ``max_seconds``.
A locked key is refused before any password is verified. With ``redis://`` every process shares the
counters; ``memory://`` is per process.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from limits.storage import Storage, storage_from_string

from auth.errors import LockedOut
from policies.file.auth import LockoutConfig

_PREFIX = "mlgate-lockout"


def _key(kind: str, value: str) -> str:
    # Hash the identifier: usernames may hold any character and should not sit in Redis as typed.
    return hashlib.sha256(f"{kind}\x00{value}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Lockout:
    """Counts failures and refuses attempts while a username or address is locked."""

    def __init__(self, config: LockoutConfig, storage: Storage | str = "memory://",
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.storage = storage_from_string(storage) if isinstance(storage, str) else storage
        self._clock = clock

    def _limits(self) -> dict[str, int]:
        return {"user": self.config.user_max_failures, "addr": self.config.address_max_failures}

    def check(self, username: str | None, address: str | None) -> None:
        """Raise :class:`LockedOut` (with Retry-After seconds) if either key is locked."""
        waits = []
        for kind, value in (("user", username), ("addr", address)):
            if not value:
                continue
            lock = f"{_PREFIX}:lock:{_key(kind, value)}"
            if self.storage.get(lock) > 0:
                waits.append(max(1, math.ceil(self.storage.get_expiry(lock) - self._clock())))
        if waits:
            raise LockedOut("Too many failed login attempts; try again later.", max(waits))

    def failed(self, username: str | None, address: str | None) -> int | None:
        """Count a failure; returns the lock length in seconds if this failure started a lock."""
        started = None
        limits = self._limits()
        for kind, value in (("user", username), ("addr", address)):
            if not value:
                continue
            key = _key(kind, value)
            count = self.storage.incr(f"{_PREFIX}:fail:{key}", self.config.window_seconds)
            if count >= limits[kind]:
                excess = count - limits[kind]
                seconds = min(self.config.max_seconds, self.config.base_seconds * 2 ** min(excess, 30))
                self.storage.incr(f"{_PREFIX}:lock:{key}", int(seconds))
                started = max(started or 0, int(seconds))
        return started

    def succeeded(self, username: str) -> None:
        """A correct password clears the username's failure count (the address keeps its count)."""
        self.storage.clear(f"{_PREFIX}:fail:{_key('user', username)}")
