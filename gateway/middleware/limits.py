"""Request size limits: query string, headers and body, checked before any handler runs.

The body limit is enforced while the body streams in, so a client that omits or understates
``Content-Length`` (chunked uploads) is cut off at the limit instead of being buffered whole. Artifact
uploads have their own, larger limit. JSON nesting depth is checked by the parser in
``tracking.api.body``, which reads the configured value from ``app.state.max_json_depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.middleware.refusal import refuse
from tracking.errors import MlflowError

# PUT .../mlflow-artifacts/artifacts/<path> streams a file; everything else is an API request.
ARTIFACT_UPLOAD_PREFIXES = ("/api/2.0/mlflow-artifacts/artifacts/", "/ajax-api/2.0/mlflow-artifacts/artifacts/")


@dataclass(frozen=True)
class SizeLimits:
    """The configured maxima, in bytes (or a count for headers)."""

    max_body_bytes: int
    max_artifact_bytes: int
    max_query_bytes: int
    max_header_bytes: int
    max_header_count: int


class BodyTooLarge(MlflowError):
    """The body grew past its limit while streaming; surfaces as 413 wherever it is caught."""

    def __init__(self, limit: int):
        super().__init__(f"Request body is larger than the limit of {limit} bytes.", "RESOURCE_EXHAUSTED",
                         status=413)


class SizeLimitMiddleware:
    """Refuse oversized requests with 413 (body) or 400 (query string, headers), MLflow-style."""

    def __init__(self, app: ASGIApp, limits: SizeLimits):
        self.app = app
        self.limits = limits

    def body_limit(self, scope: Scope) -> int:
        """The body limit that applies to this request."""
        if scope["method"] == "PUT" and scope["path"].startswith(ARTIFACT_UPLOAD_PREFIXES):
            return self.limits.max_artifact_bytes
        return self.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        if len(scope["query_string"]) > limits.max_query_bytes:
            await refuse(send, 400, "BAD_REQUEST",
                         f"Query string is longer than the limit of {limits.max_query_bytes} bytes.")
            return
        headers = scope["headers"]
        if len(headers) > limits.max_header_count:
            await refuse(send, 400, "BAD_REQUEST",
                         f"Request has more than {limits.max_header_count} headers.")
            return
        header_bytes = 0
        declared: int | None = None
        for name, value in headers:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if header_bytes > limits.max_header_bytes:
            await refuse(send, 400, "BAD_REQUEST",
                         f"Request headers are larger than the limit of {limits.max_header_bytes} bytes.")
            return
        limit = self.body_limit(scope)
        if declared is not None and declared > limit:
            await refuse(send, 413, "RESOURCE_EXHAUSTED",
                         f"Request body is larger than the limit of {limit} bytes.")
            return
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # Normally the app's MlflowError handler answers; this covers a reader outside the app.
            if started:
                raise
            await refuse(send, exc.status, exc.error_code, exc.message)
