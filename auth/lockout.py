"""Failed-attempt throttling per username and per client address, shared through the limits storage.

Failures are counted in a window. Once a key reaches its limit it is locked for ``base_seconds``; each
further failure after a lock ends doubles the next lock (exponential backoff) up to ``max_seconds``.
A locked key is refused before any password is verified. With ``redis://`` every process shares the
counters; ``memory://`` is per process.

Keys carry the deployment's namespace (``network.rate_limit.namespace``, as the rate limits do), so two
deployments sharing one Redis database never lock each other's users. Redis is asked with short socket
timeouts, and when it cannot answer the attempt is refused with :class:`LockoutUnavailable` (503): without
its counters the server cannot tell whether the account is locked, so it fails closed instead of hanging
or letting the attempt through.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

from limits.errors import StorageError
from limits.storage import Storage, storage_from_string

from auth.errors import LockedOut, Unavailable
from policies.file.auth import LockoutConfig

log = logging.getLogger("mlgate.auth.lockout")
_PREFIX = "mlgate-lockout"
DEFAULT_NAMESPACE = "mlgate"
# A stalled Redis turns into a quick refusal, not a login that hangs until the client gives up.
REDIS_TIMEOUT_SECONDS = 1.0


class LockoutUnavailable(Unavailable):
    """The shared lockout counters did not answer: the attempt is refused (503), never let through."""


def _key(kind: str, value: str) -> str:
    # Hash the identifier: usernames may hold any character and should not sit in Redis as typed.
    return hashlib.sha256(f"{kind}\x00{value}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _storage(uri: str) -> Storage:
    if uri.startswith(("redis://", "rediss://")):
        return storage_from_string(uri, wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                   socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    return storage_from_string(uri, wrap_exceptions=True)


class Lockout:
    """Counts failures and refuses attempts while a username or address is locked."""

    def __init__(self, config: LockoutConfig, storage: Storage | str = "memory://",
                 clock: Callable[[], float] = time.time, *, namespace: str = DEFAULT_NAMESPACE):
        self.config = config
        self.storage = _storage(storage) if isinstance(storage, str) else storage
        self._clock = clock
        self._prefix = f"{_PREFIX}:{namespace}"

    def _unavailable(self, exc: Exception) -> LockoutUnavailable:
        # The type only: a storage error's text can carry the Redis URL (and its password).
        log.error("lockout storage unavailable (%s); refusing the attempt", type(exc.__cause__ or exc).__name__)
        return LockoutUnavailable("Sign-in is temporarily unavailable; retry shortly.")

    def _limits(self) -> dict[str, int]:
        return {"user": self.config.user_max_failures, "addr": self.config.address_max_failures}

    def check(self, username: str | None, address: str | None) -> None:
        """Raise :class:`LockedOut` (with Retry-After seconds) if either key is locked."""
        waits = []
        try:
            for kind, value in (("user", username), ("addr", address)):
                if not value:
                    continue
                lock = f"{self._prefix}:lock:{_key(kind, value)}"
                if self.storage.get(lock) > 0:
                    waits.append(max(1, math.ceil(self.storage.get_expiry(lock) - self._clock())))
        except StorageError as exc:
            raise self._unavailable(exc) from None
        if waits:
            raise LockedOut("Too many failed login attempts; try again later.", max(waits))

    def failed(self, username: str | None, address: str | None) -> int | None:
        """Count a failure; returns the lock length in seconds if this failure started a lock."""
        started = None
        limits = self._limits()
        try:
            for kind, value in (("user", username), ("addr", address)):
                if not value:
                    continue
                key = _key(kind, value)
                count = self.storage.incr(f"{self._prefix}:fail:{key}", self.config.window_seconds)
                if count >= limits[kind]:
                    excess = count - limits[kind]
                    seconds = min(self.config.max_seconds, self.config.base_seconds * 2 ** min(excess, 30))
                    self.storage.incr(f"{self._prefix}:lock:{key}", int(seconds))
                    started = max(started or 0, int(seconds))
        except StorageError as exc:
            raise self._unavailable(exc) from None
        return started

    def succeeded(self, username: str) -> None:
        """A correct password clears the username's failure count (the address keeps its count)."""
        try:
            self.storage.clear(f"{self._prefix}:fail:{_key('user', username)}")
        except StorageError as exc:
            raise self._unavailable(exc) from None
