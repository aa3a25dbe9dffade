"""Security headers on every response the app sends.

A header the app already set is left alone (a route that needs its own CSP says so itself); everything else
gets the secure default. Cache-Control is the exception: a route may only tighten it or declare its answer
``public`` (the UI's static files); any other value (``no-cache``, ``private``, a ``max-age`` on private data)
is replaced by ``no-store``, so no authenticated answer can be kept by a browser or shared cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

RawHeaders = tuple[tuple[bytes, bytes], ...]


def _raw(values: dict[str, str]) -> RawHeaders:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in values.items())


def _storable_private(name: bytes, value: bytes) -> bool:
    """A Cache-Control that lets a cache store an answer the route did not declare public (RFC 9111 5.2.2)."""
    if name.lower() != b"cache-control":
        return False
    directives = {part.strip().split(b"=", 1)[0].lower() for part in value.split(b",")}
    return b"no-store" not in directives and b"public" not in directives


@dataclass(frozen=True)
class HeaderPolicy:
    """The compiled header values, encoded once so each response only compares and appends."""

    html_defaults: RawHeaders   # for text/html responses: the full CSP
    api_defaults: RawHeaders    # for everything else: framing is all a CSP needs to say
    hsts: bytes                 # empty when HSTS is off

    @classmethod
    def build(cls, *, frame_ancestors: str, referrer_policy: str, content_security_policy: str,
              hsts_max_age: int, hsts_include_subdomains: bool) -> HeaderPolicy:
        """Compile validated settings."""
        ancestors = "'none'" if frame_ancestors == "none" else "'self'"
        common = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY" if frame_ancestors == "none" else "SAMEORIGIN",
            "Referrer-Policy": referrer_policy,
            # API data (runs, params, artifacts) is per-user: no browser or proxy may keep a copy.
            "Cache-Control": "no-store",
        }
        html_csp = f"{content_security_policy.rstrip('; ')}; frame-ancestors {ancestors}"
        hsts = f"max-age={hsts_max_age}" + ("; includeSubDomains" if hsts_include_subdomains else "")
        return cls(
            html_defaults=_raw({**common, "Content-Security-Policy": html_csp}),
            api_defaults=_raw({**common, "Content-Security-Policy": f"frame-ancestors {ancestors}"}),
            hsts=hsts.encode("latin-1") if hsts_max_age > 0 else b"",
        )


class SecurityHeadersMiddleware:
    """Add nosniff, framing, referrer, CSP (strict for HTML), no-store and HSTS (HTTPS) headers."""

    def __init__(self, app: ASGIApp, policy: HeaderPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        # scope["scheme"] is "https" when TLS ended here or at a trusted proxy (see proxies.py).
        # RFC 6797 section 7.2: HSTS is only sent over secure transport.
        hsts = policy.hsts if scope.get("scheme") == "https" else b""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(name, value) for name, value in message.get("headers", ())
                       if not _storable_private(name, value)]
                present = {name.lower() for name, _ in raw}
                html = any(name.lower() == b"content-type" and value.lower().startswith(b"text/html")
                           for name, value in raw)
                defaults = policy.html_defaults if html else policy.api_defaults
                raw += [(name, value) for name, value in defaults if name not in present]
                if hsts and b"strict-transport-security" not in present:
                    raw.append((b"strict-transport-security", hsts))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
