"""Cross-site write protection: a browser on another site can never drive a state change.

A cookie session rides along on cross-site form posts and ``fetch`` calls, so a state-changing request
that a browser marks as coming from elsewhere is refused: an ``Origin`` that is neither this server's own
origin nor a configured CORS origin, or ``Sec-Fetch-Site: cross-site`` (Fetch Metadata) without an
allowed Origin. SDKs and command-line clients send neither header and are unaffected.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.middleware.refusal import refuse
from policies.file.network import normalize_origin

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def own_origin(scope: Scope) -> str | None:
    """The origin this request was addressed to: its (proxy-resolved) scheme and Host header."""
    for name, value in scope["headers"]:
        if name == b"host":
            return normalize_origin(f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}")
    return None


class CrossSiteWriteMiddleware:
    """Refuse cross-site state-changing requests with 403 and an MLflow-style body."""

    def __init__(self, app: ASGIApp, allowed_origins: frozenset[str]):
        self.app = app
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        origin = fetch_site = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = value.decode("latin-1").strip().lower()
        if origin is not None:
            normalized = normalize_origin(origin)  # "null" and malformed values normalize to None
            if normalized is None or (normalized not in self.allowed_origins
                                      and normalized != own_origin(scope)):
                await refuse(send, 403, "PERMISSION_DENIED",
                             f"Cross-site {scope['method']} refused: origin {origin[:100]!r} is not allowed "
                             "to change state on this server.")
                return
        elif fetch_site == "cross-site":
            await refuse(send, 403, "PERMISSION_DENIED",
                         f"Cross-site {scope['method']} refused (Sec-Fetch-Site: cross-site).")
            return
        await self.app(scope, receive, send)
