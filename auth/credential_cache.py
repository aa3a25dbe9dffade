"""The verified-credential cache: a password hash is verified at most once per credential per TTL.

Entries are keyed by an HMAC of the credential under a per-process random key, so the plaintext (or
anything a stolen memory dump could be brute-forced from quickly) is never kept. An entry remembers the
user's *generation*; any change that must end cached credentials (password change, disable, delete,
admin flag, groups) bumps the generation in the database, and a cache hit is honoured only if the
generation still matches — on every process. With Redis, a pub/sub message drops the entries at once
and the per-hit database check is skipped while the subscription is healthy. The same channel carries
"grants changed", so every process re-reads the policy generation at once instead of within its polling
interval (gateway.authz.PolicyHolder).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from auth.principal import Principal

log = logging.getLogger("mlgate.auth.cache")
CHANNEL = "mlgate:auth:invalidate"
# The subscriber pings Redis when nothing arrived for this long, and counts the subscription as lost (so
# cached credentials are checked in the database again) when nothing at all arrived for STALE_SECONDS.
HEARTBEAT_SECONDS = 0.5
STALE_SECONDS = 1.5
# On the same channel as the user ids: stored grants changed (a server that predates it ignores it).
GRANTS_CHANGED = "grants"


@dataclass(frozen=True)
class CacheEntry:
    """A verified credential: who it proves, the account's state then, until when (monotonic seconds).

    ``generation`` is what the identity layer compares with the account's row on a hit (its
    :class:`auth.store.AccountStamp`: generation, name and creation time), never the id alone.
    """

    principal: Principal
    generation: Hashable
    expires: float
    # For tokens: the token's own expiry (epoch ms), checked on every hit.
    token_expires_at: int | None = None


class CredentialCache:
    """A bounded LRU of verified credentials, keyed by HMAC."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def key_for(self, kind: str, *parts: str) -> bytes:
        """The cache key of a credential: HMAC-SHA256 under this process's random key."""
        message = "\x00".join((kind, *parts)).encode("utf-8", "surrogatepass")
        return hmac.digest(self._key, message, "sha256")  # one-shot: OpenSSL's HMAC without the Python wrapper

    def get(self, key: bytes) -> CacheEntry | None:
        """The live entry for ``key``, if any."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, principal: Principal, generation: Hashable, *, ttl: float | None = None,
            token_expires_at: int | None = None) -> None:
        """Remember a verified credential for the TTL."""
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = CacheEntry(principal, generation, self._clock() + ttl, token_expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        """Forget one credential."""
        with self._lock:
            self._entries.pop(key, None)

    def drop_user(self, user_id: int) -> None:
        """Forget every credential of a user (this process)."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.principal.id == user_id]:
                del self._entries[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


class Invalidation:
    """Tells every process that a user's credentials changed; the database generation is the fallback."""

    def __init__(self, cache: CredentialCache, redis_url: str | None = None):
        self.cache = cache
        self._redis_url = redis_url
        self._client = None
        self._healthy = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Counts the invalidations seen here (pushed, published, resubscribed): a credential verified
        # against a row read before any of them must not be cached (see :meth:`Identity._password_login`).
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._grant_listeners: list[Callable[[], None]] = []

    def on_grants_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the subscriber thread) when another process says stored grants changed."""
        self._grant_listeners.append(listener)

    @property
    def epoch(self) -> int:
        """How many invalidations this process has applied so far; read it before reading a user."""
        return self._epoch

    def _advance(self) -> None:
        # Before the entries are dropped: a login that cached in between sees the new epoch, or its entry
        # is dropped right after.
        with self._epoch_lock:
            self._epoch += 1

    @property
    def push_enabled(self) -> bool:
        """Whether pushed invalidations are arriving, so cache hits need no database check."""
        return self._healthy.is_set()

    def start(self) -> None:
        """Subscribe to invalidations (Redis only); failures leave the database check in force."""
        if not self._redis_url or self._thread is not None:
            return
        import redis

        self._client = redis.Redis.from_url(self._redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._thread = threading.Thread(target=self._listen, name="mlgate-auth-invalidation", daemon=True)
        self._thread.start()
        self._healthy.wait(timeout=2)

    def stop(self) -> None:
        """End the subscription."""
        self._stop.set()
        self._healthy.clear()

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(CHANNEL)
                # Healthy only once Redis has confirmed the subscription: a connection that opens but never
                # answers (a stalled Redis, a half-open link) must leave the database check in force.
                self._await(pubsub, "subscribe")
                # Anything cached before the subscription began may have missed a message.
                self._advance()
                self.cache.clear()
                self._grants_changed()
                self._healthy.set()
                failures = 0
                self._follow(pubsub)
            except Exception as exc:  # a dropped connection must not end invalidation: fall back, retry
                self._healthy.clear()
                failures += 1
                log.warning("auth invalidation subscription lost (%s); checking the database instead",
                            type(exc).__name__)
                self._stop.wait(min(30.0, 2.0 ** failures))
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection may fail too; it is dropped either way
                        log.debug("closing the invalidation subscription failed", exc_info=True)

    def _await(self, pubsub, kind: str) -> None:
        deadline = time.monotonic() + STALE_SECONDS
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=HEARTBEAT_SECONDS)
            if message is not None and message.get("type") == kind:
                return
        raise ConnectionError(f"Redis did not confirm the {kind} in time")

    def _follow(self, pubsub) -> None:
        """Apply messages; ping while quiet, and give up (unhealthy) when Redis stops answering."""
        heard = pinged = time.monotonic()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=HEARTBEAT_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message.get("type") == "message":
                    self._apply(message.get("data"))
            if now - heard > STALE_SECONDS:
                # Pushes may be missed from here on: stop trusting cached credentials without a check.
                self._healthy.clear()
                raise ConnectionError(f"no answer from Redis for {STALE_SECONDS:.1f}s")
            if now - max(heard, pinged) >= HEARTBEAT_SECONDS:
                pubsub.ping()
                pinged = now

    def _grants_changed(self) -> None:
        for listener in list(self._grant_listeners):
            try:
                listener()
            except Exception as exc:  # one listener must not stop the subscription
                log.warning("grant invalidation listener failed (%s)", type(exc).__name__)

    def _apply(self, data: bytes | str | None) -> None:
        if data in (GRANTS_CHANGED, GRANTS_CHANGED.encode()):
            self._grants_changed()
            return
        try:
            user_id = int(data)
        except (TypeError, ValueError):
            return
        self._advance()
        self.cache.drop_user(user_id)

    def publish(self, user_id: int) -> None:
        """Drop the user's cached credentials here and, with Redis, on every other process."""
        self._advance()
        self.cache.drop_user(user_id)
        if self._client is None:
            return
        try:
            self._client.publish(CHANNEL, str(user_id))
        except Exception as exc:
            # Without the push, other processes must check the database on each hit until they resubscribe.
            log.warning("could not publish auth invalidation (%s)", type(exc).__name__)
            self._healthy.clear()

    def publish_grants(self) -> None:
        """Tell every other process that stored grants changed (call after the change commits)."""
        if self._client is None:
            return
        try:
            self._client.publish(CHANNEL, GRANTS_CHANGED)
        except Exception as exc:
            # The others still read the policy generation at least once a second.
            log.warning("could not publish grant invalidation (%s)", type(exc).__name__)
