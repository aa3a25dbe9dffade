"""A tiny ASGI app for the middleware tests: it answers with what the inner layers would see."""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send


class EchoApp:
    """Reads the whole body, then answers JSON describing the request; counts completed calls."""

    def __init__(self, content_type: str = "application/json", extra_headers: dict[str, str] | None = None):
        self.calls = 0
        self.content_type = content_type
        self.extra_headers = extra_headers or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.calls += 1
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        state = scope.get("state", {})
        body = json.dumps({
            "path": scope["path"],
            "client_ip": state.get("client_ip"),
            "peer_ip": state.get("peer_ip"),
            "client": list(scope["client"]) if scope.get("client") else None,
            "scheme": scope["scheme"],
            "host": headers.get("host"),
            "forwarded": sorted(k for k in headers if k.startswith("x-forwarded")),
            "body_bytes": size,
        }).encode()
        raw = [(b"content-type", self.content_type.encode()), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in self.extra_headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})
