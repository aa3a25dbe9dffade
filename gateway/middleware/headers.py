"""Security headers on every response the app sends.

A header the app already set is left alone (a route that needs its own caching or CSP says so itself);
everything else gets the secure default.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class HeaderPolicy:
    """The compiled header values."""

    frame_options: str          # X-Frame-Options: DENY | SAMEORIGIN
    frame_ancestors: str        # CSP frame-ancestors: 'none' | 'self'
    referrer_policy: str
    html_csp: str               # full policy for HTML pages, frame-ancestors included
    hsts: str

    @classmethod
    def build(cls, *, frame_ancestors: str, referrer_policy: str, content_security_policy: str,
              hsts_max_age: int, hsts_include_subdomains: bool) -> HeaderPolicy:
        """Compile validated settings."""
        ancestors = "'none'" if frame_ancestors == "none" else "'self'"
        hsts = f"max-age={hsts_max_age}" + ("; includeSubDomains" if hsts_include_subdomains else "")
        return cls(
            frame_options="DENY" if frame_ancestors == "none" else "SAMEORIGIN",
            frame_ancestors=ancestors,
            referrer_policy=referrer_policy,
            html_csp=f"{content_security_policy.rstrip('; ')}; frame-ancestors {ancestors}",
            hsts=hsts if hsts_max_age > 0 else "",
        )


class SecurityHeadersMiddleware:
    """Add nosniff, framing, referrer, CSP (HTML), no-store and HSTS (HTTPS) headers."""

    def __init__(self, app: ASGIApp, policy: HeaderPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        # scope["scheme"] is "https" when TLS ended here or at a trusted proxy (see proxies.py).
        over_https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", policy.frame_options)
                headers.setdefault("Referrer-Policy", policy.referrer_policy)
                # API data (runs, params, artifacts) is per-user: no browser or proxy may keep a copy.
                headers.setdefault("Cache-Control", "no-store")
                if headers.get("content-type", "").lower().startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", policy.html_csp)
                else:
                    headers.setdefault("Content-Security-Policy", f"frame-ancestors {policy.frame_ancestors}")
                if over_https and policy.hsts:
                    # RFC 6797 section 7.2: HSTS is only meaningful, and only sent, over secure transport.
                    headers.setdefault("Strict-Transport-Security", policy.hsts)
            await send(message)

        await self.app(scope, receive, send_with_headers)
