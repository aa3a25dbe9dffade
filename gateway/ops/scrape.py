"""The Prometheus scrape token: ``GET /metrics`` with ``Authorization: Bearer <MLGATE_METRICS_TOKEN>``.

This layer sits just inside the request log, before the network ring. A request for ``/metrics`` bearing
exactly the configured token (compared in constant time) is answered here: the scraper needs no user
account, its token never reaches the personal-access-token check (where it would count as failed logins
towards the scraper address's lockout), and it may address the server by pod IP, as Prometheus does
(the Host allowlist defends browsers against DNS rebinding; a browser cannot know this token). Every
other request, including ``/metrics`` with any other credential, goes through the whole ring
(Host allowlist, rate limits), authentication and the route table, which admits administrators only.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.ops.metrics import Metrics

METRICS_PATH = "/metrics"


def bearer_token(scope: Scope) -> str | None:
    """The ``Authorization: Bearer`` credential of the request, if exactly one Authorization header has one."""
    values = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, credential = values[0].decode("latin-1").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


class ScrapeTokenMiddleware:
    """Answers ``GET /metrics`` for the configured scrape token; passes everything else through."""

    def __init__(self, app: ASGIApp, metrics: Metrics, token: str | None):
        self.app = app
        self.metrics = metrics
        self._token = token.encode("utf-8") if token else None

    def _is_scrape(self, scope: Scope) -> bool:
        if self._token is None or scope["type"] != "http" or scope["path"] != METRICS_PATH:
            return False
        if scope["method"] not in ("GET", "HEAD"):
            return False
        presented = bearer_token(scope)
        return presented is not None and hmac.compare_digest(presented.encode("utf-8"), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_scrape(scope):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["operation_id"] = "ops.metrics"
        body, content_type = self.metrics.exposition()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
