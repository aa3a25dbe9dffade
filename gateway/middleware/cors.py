"""CORS allowlist: exact origins only, answered per the Fetch standard's CORS protocol.

Only listed origins ever receive ``Access-Control-Allow-Origin``; the response is otherwise unchanged, so
the browser withholds it from the calling page. ``null`` (sandboxed frames, local files) is never listed,
and ``*`` is only possible without credentials (refused at load otherwise, because a credentialed ``*``
means echoing any Origin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.middleware.refusal import refuse
from policies.file.network import normalize_origin

# Always allowed by browsers without asking (Fetch standard, "CORS-safelisted request-header").
_SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type", "range"})


@dataclass(frozen=True)
class CorsPolicy:
    """The compiled CORS settings."""

    origins: frozenset[str]
    any_origin: bool
    allow_credentials: bool
    methods: frozenset[str]
    headers: frozenset[str]
    expose_headers: str
    max_age: int

    @classmethod
    def build(cls, origins: Iterable[str], *, allow_credentials: bool, methods: Iterable[str],
              headers: Iterable[str], expose_headers: Iterable[str], max_age: int) -> CorsPolicy:
        """Compile validated settings (origins normalized, names lower-cased)."""
        listed = [o.strip() for o in origins]
        return cls(
            origins=frozenset(n for o in listed if o != "*" and (n := normalize_origin(o)) is not None),
            any_origin="*" in listed and not allow_credentials,
            allow_credentials=allow_credentials,
            methods=frozenset(m.upper() for m in methods),
            headers=frozenset(h.lower() for h in headers) | _SAFELISTED_HEADERS,
            expose_headers=", ".join(expose_headers),
            max_age=max_age,
        )

    def allows(self, origin: str) -> bool:
        """Whether a page from ``origin`` may read responses."""
        if origin.strip().lower() == "null":
            return False
        normalized = normalize_origin(origin)
        return normalized is not None and (self.any_origin or normalized in self.origins)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class CorsMiddleware:
    """Answer preflights and add CORS headers for allowed origins only."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        requested_method = _header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested_method is not None:
            await self._preflight(scope, send, origin, requested_method)
            return
        allowed = self.policy.allows(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # Responses differ by Origin, so shared caches must key on it (Fetch standard, CORS).
                headers.add_vary_header("Origin")
                if allowed:
                    headers["Access-Control-Allow-Origin"] = origin
                    if self.policy.allow_credentials:
                        headers["Access-Control-Allow-Credentials"] = "true"
                    if self.policy.expose_headers:
                        headers["Access-Control-Expose-Headers"] = self.policy.expose_headers
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str, method: str) -> None:
        policy = self.policy
        requested = _header(scope, b"access-control-request-headers") or ""
        names = {h.strip().lower() for h in requested.split(",") if h.strip()}
        problem = None
        if not policy.allows(origin):
            problem = "origin is not allowed"
        elif method.strip().upper() not in policy.methods:
            problem = f"method {method.strip()[:20]!r} is not allowed"
        elif not names <= policy.headers:
            problem = f"headers {sorted(names - policy.headers)[:5]} are not allowed"
        if problem is not None:
            await refuse(send, 403, "PERMISSION_DENIED", f"CORS preflight refused: {problem}.",
                         {"Vary": "Origin"})
            return
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(sorted(policy.methods)),
            "Access-Control-Allow-Headers": ", ".join(sorted(policy.headers)),
            "Access-Control-Max-Age": str(policy.max_age),
            "Vary": "Origin",
        }
        if policy.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": 204, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
