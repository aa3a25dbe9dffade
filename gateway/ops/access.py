"""The outermost layer: a request id for every request, one access-log line and the request metrics.

The id is the caller's ``X-Request-ID`` when it is a plain token (letters, digits, ``._:-``, at most 128
characters; anything else could forge log lines) or a fresh random one, and is echoed in the response's
``X-Request-ID``. The access line names the request id, method, path, operation id, principal, client
address, status and latency. It never carries headers, cookies or the query string: those are where
credentials travel (``Authorization``, ``mlgate_session``, a refused ``?access_token=``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.ops.logs import REQUEST_ID
from gateway.ops.metrics import UNROUTED, Metrics

log = logging.getLogger("mlgate.access")
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes are counted but not logged when they succeed: one line every few seconds per probe is noise.
QUIET_PATHS = frozenset({"/health", "/ready"})
OPERATION_KEY = "operation_id"  # set in scope["state"] by gateway.ops.decisions once the route is known


# Request ids are this process's random prefix plus a counter: unique across processes and restarts
# like a uuid4 (32 hex characters), without a getrandom() system call on every request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _reseed_request_ids() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_reseed_request_ids)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """A fresh request id: 16 random hex characters of this process, then a 16-digit hex counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-ID`` if it is acceptable, else None."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.fullmatch(text) else None
    return None


def _principal_label(principal) -> str | None:
    if principal is None:
        return None
    return f"{principal.kind}:{principal.name}"


class RequestObservationMiddleware:
    """Plain ASGI: request id in, request id out, then one log line and the metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        reset = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        answer = {"status": 500, "rate_limited": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                answer["status"] = message["status"]
                # The limiter's 429 carries the RateLimit-* fields; a lockout's 429 only Retry-After.
                answer["rate_limited"] = message["status"] == 429 and "ratelimit-policy" in headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, state, answer, time.perf_counter() - started)
            REQUEST_ID.reset(reset)

    def _observe(self, scope: Scope, state: dict, answer: dict, seconds: float) -> None:
        status = answer["status"]
        operation = state.get(OPERATION_KEY) or UNROUTED
        m = self.metrics
        m.requests.labels(operation, scope["method"], str(status)).inc()
        m.latency.labels(operation).observe(seconds)
        if status == 429:
            (m.rate_limited if answer["rate_limited"] else m.lockout_refusals).inc()
        if scope["path"] in QUIET_PATHS and status < 400:
            return
        log.log(logging.WARNING if status >= 500 else logging.INFO, "request", extra={
            "method": scope["method"], "path": scope["path"], "operation": operation,
            "principal": _principal_label(state.get("principal")), "client": state.get("client_ip"),
            "status": status, "latency_ms": round(seconds * 1000, 2)})
