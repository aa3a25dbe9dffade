"""Rate limiting with the ``limits`` library: per client address before authentication, per principal after.

Every setting comes from mlgate's configuration; nothing is read from the environment or a ``.env`` file
(slowapi's ``Limiter`` does both, which is why the middleware drives ``limits`` directly: the limiter that
runs is exactly the one logged at startup). ``memory://`` keeps budgets per process; ``redis://`` shares
them between processes and hosts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from limits import RateLimitItem, parse_many
from limits.aio.strategies import STRATEGIES
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.sessions import COOKIE_NAME
from gateway.middleware.hosts import EXEMPT_PATHS
from gateway.middleware.refusal import refuse

log = logging.getLogger("mlgate.network")

# A stuck Redis must turn into a quick 503, not a request that hangs until the client gives up.
_REDIS_TIMEOUTS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SENSITIVE_DEFERRED = "rate_limit_sensitive_deferred"  # scope state: the client address, until authentication
_ANONYMOUS_DEFERRED = "rate_limit_anonymous_deferred"  # scope state: the client address, until authentication
_SESSION_COOKIE = COOKIE_NAME.encode("latin-1") + b"="


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class RateLimited:
    """A refused request: which budget ran out and when it refills."""

    limit: RateLimitItem
    reset_at: float
    scope_name: str

    def headers(self, now: float | None = None) -> dict[str, str]:
        """``Retry-After`` (RFC 9110 section 10.2.3) and the IETF draft ``RateLimit-*`` fields."""
        wait = max(1, math.ceil(self.reset_at - (time.time() if now is None else now)))
        window = self.limit.get_expiry()
        return {
            "Retry-After": str(wait),
            "RateLimit-Limit": str(self.limit.amount),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(wait),
            "RateLimit-Policy": f"{self.limit.amount};w={window}",
        }

    async def respond(self, send: Send) -> None:
        """Send the 429 response."""
        await refuse(send, 429, "REQUEST_LIMIT_EXCEEDED",
                     f"Too many requests from this {self.scope_name}: the limit is {self.limit}. "
                     "Retry after the time given in Retry-After.", self.headers())


class StorageUnavailable(Exception):
    """The shared rate-limit storage did not answer; requests are refused rather than let through."""

    async def respond(self, send: Send) -> None:
        """Send the 503: fail closed, because without its counter the limiter cannot tell a flood from use."""
        log.error("rate-limit storage unavailable: %s", self)
        await refuse(send, 503, "TEMPORARILY_UNAVAILABLE", "Rate limiting is temporarily unavailable; retry shortly.",
                     {"Retry-After": "5"})


class RequestRateLimiter:
    """Budgets per client address (stricter on sensitive paths) and per principal."""

    def __init__(self, *, enabled: bool, storage_uri: str, strategy: str, per_client: str,
                 per_principal: str, sensitive: str, sensitive_paths: Iterable[str], namespace: str,
                 sensitive_admin: str = "600/minute", anonymous: str = "6000/minute"):
        self.enabled = enabled
        self.storage_uri = storage_uri
        self.strategy_name = strategy
        self.per_client = parse_many(per_client)
        self.anonymous = parse_many(anonymous)
        self.per_principal = parse_many(per_principal)
        self.sensitive = parse_many(sensitive)
        self.sensitive_admin = parse_many(sensitive_admin)
        self.sensitive_paths = tuple(sensitive_paths)
        self.namespace = namespace
        self._shared = storage_uri.startswith(("redis://", "rediss://"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.strategy = self._new_strategy()

    def _new_strategy(self):
        options: dict = {"wrap_exceptions": True}
        if self._shared:
            options |= {"implementation": "redispy", **_REDIS_TIMEOUTS}
        return STRATEGIES[self.strategy_name](storage_from_string(f"async+{self.storage_uri}", **options))

    def _current_strategy(self):
        # Async Redis connections belong to the event loop that opened them. A server runs one loop per
        # process, but a process that serves the app from a new loop (test clients, embedding) needs a
        # fresh client; the counts live in Redis, so nothing is lost. Memory storage is kept as is.
        if self._shared:
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                if self._loop is not None:
                    self.strategy = self._new_strategy()
                self._loop = loop
        return self.strategy

    def effective_state(self) -> dict[str, object]:
        """What this limiter enforces, for the startup log (secrets redacted)."""
        return {
            "enabled": self.enabled,
            "storage": redact_url(self.storage_uri),
            "strategy": self.strategy_name,
            "per_client": "; ".join(map(str, self.per_client)),
            "anonymous": "; ".join(map(str, self.anonymous)),
            "per_principal": "; ".join(map(str, self.per_principal)),
            "sensitive": "; ".join(map(str, self.sensitive)),
            "sensitive_admin": "; ".join(map(str, self.sensitive_admin)),
            "sensitive_paths": list(self.sensitive_paths),
            "namespace": self.namespace,
        }

    async def _hit(self, items: list[RateLimitItem], kind: str, key: str, scope_name: str) -> RateLimited | None:
        for item in items:
            try:
                strategy = self._current_strategy()
                if not await strategy.hit(item, self.namespace, kind, key):
                    stats = await strategy.get_window_stats(item, self.namespace, kind, key)
                    return RateLimited(item, stats.reset_time, scope_name)
            except StorageError as exc:
                raise StorageUnavailable(str(exc)) from exc
        return None

    def is_sensitive(self, path: str, method: str) -> bool:
        """A write to a sensitive path (sign-in, user management, token minting)."""
        # Guessing passwords and minting tokens are writes; reading the login page or one's own account
        # (the UI does on every load) stays on the general budget.
        return method not in _SAFE_METHODS and path.startswith(self.sensitive_paths)

    async def check_client(self, client_ip: str, path: str, method: str = "GET", *,
                           defer_sensitive: bool = False) -> RateLimited | None:
        """Count one request from ``client_ip``; the refusal if a budget is exhausted.

        ``defer_sensitive``: the request carries credentials, so its sensitive-path budget is chosen once
        they are checked (:func:`limit_sensitive`): an administrator's, or the tight per-address one.
        """
        if not self.enabled:
            return None
        refused = await self._hit(self.per_client, "client", client_ip, "client address")
        if refused is None and not defer_sensitive and self.is_sensitive(path, method):
            refused = await self.check_sensitive(client_ip)
        return refused

    async def check_anonymous(self, client_ip: str) -> RateLimited | None:
        """Count one request from ``client_ip`` that has no identity (none sent, or a failed credential)."""
        if not self.enabled:
            return None
        return await self._hit(self.anonymous, "anonymous", client_ip, "client address without credentials")

    async def check_sensitive(self, client_ip: str) -> RateLimited | None:
        """Count one sensitive write against the tight per-address budget."""
        if not self.enabled:
            return None
        return await self._hit(self.sensitive, "sensitive", client_ip, "client address on this endpoint")

    async def check_sensitive_admin(self, principal_id: str) -> RateLimited | None:
        """Count one sensitive write by an authenticated administrator (bulk user administration)."""
        if not self.enabled:
            return None
        return await self._hit(self.sensitive_admin, "sensitive-admin", principal_id, "administrator on this endpoint")

    async def check_principal(self, principal_id: str) -> RateLimited | None:
        """Count one request by an authenticated principal; the refusal if its budget is exhausted."""
        if not self.enabled:
            return None
        return await self._hit(self.per_principal, "principal", principal_id, "account")


async def limit_principal(scope: Scope, principal_id: str) -> RateLimited | StorageUnavailable | None:
    """The per-principal hook for the authentication layer, called once the principal is known.

    Returns None to proceed, or a refusal whose ``await refusal.respond(send)`` sends the 429 (budget
    spent) or 503 (storage down). Without the network middleware installed nothing is counted.
    """
    limiter: RequestRateLimiter | None = scope.get("state", {}).get("rate_limiter")
    if limiter is None:
        return None
    try:
        return await limiter.check_principal(principal_id)
    except StorageUnavailable as exc:
        return exc


async def limit_sensitive(scope: Scope, principal) -> RateLimited | StorageUnavailable | None:
    """The deferred sensitive-path budget, called by the authentication layer once credentials are checked.

    An authenticated administrator spends the bulk-administration budget (per administrator); anyone else
    (no principal, a failed credential, a non-administrator) the tight per-address one, as if nothing had
    been deferred. Nothing to do when the rate-limit middleware did not defer this request.
    """
    state = scope.get("state", {})
    client_ip = state.pop(_SENSITIVE_DEFERRED, None)
    limiter: RequestRateLimiter | None = state.get("rate_limiter")
    if client_ip is None or limiter is None:
        return None
    try:
        if principal is not None and principal.is_admin:
            return await limiter.check_sensitive_admin(f"{principal.kind}:{principal.id}")
        return await limiter.check_sensitive(client_ip)
    except StorageUnavailable as exc:
        return exc


async def limit_anonymous(scope: Scope) -> RateLimited | StorageUnavailable | None:
    """The per-address budget of requests without an identity, called by the authentication layer when a
    request ends without a principal (none sent, or a credential that failed). Nothing to do for a request
    the rate-limit middleware did not count (probes) or without the middleware."""
    state = scope.get("state", {})
    client_ip = state.pop(_ANONYMOUS_DEFERRED, None)
    limiter: RequestRateLimiter | None = state.get("rate_limiter")
    if client_ip is None or limiter is None:
        return None
    try:
        return await limiter.check_anonymous(client_ip)
    except StorageUnavailable as exc:
        return exc


def _carries_credentials(scope: Scope) -> bool:
    """An Authorization header or a session cookie: credentials the authentication layer will check."""
    for name, value in scope["headers"]:
        if name == b"authorization" or (name == b"cookie" and _SESSION_COOKIE in value):
            return True
    return False


class RateLimitMiddleware:
    """Count every request against its client address; refuse with 429 once a budget is spent."""

    def __init__(self, app: ASGIApp, limiter: RequestRateLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["rate_limiter"] = self.limiter
        if scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client_ip = state.get("client_ip") or (scope.get("client") or ("unknown",))[0]
        # A sensitive write with credentials is counted after authentication (limit_sensitive), so a
        # scripting administrator gets the bulk budget; without credentials it is counted here, before any
        # password is hashed.
        defer = self.limiter.enabled and self.limiter.is_sensitive(scope["path"], scope["method"]) \
            and _carries_credentials(scope)
        if defer:
            state[_SENSITIVE_DEFERRED] = client_ip
        try:
            refused: RateLimited | StorageUnavailable | None = await self.limiter.check_client(
                client_ip, scope["path"], scope["method"], defer_sensitive=defer)
        except StorageUnavailable as exc:
            refused = exc
        if refused is not None:
            await refused.respond(send)
            return
        # The anonymous budget is counted once authentication has found no identity (limit_anonymous).
        state[_ANONYMOUS_DEFERRED] = client_ip
        await self.app(scope, receive, send)
