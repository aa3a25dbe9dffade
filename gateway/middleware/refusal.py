"""The one way the outer middleware refuses a request: an MLflow-style JSON error, sent as plain ASGI.

These refusals happen before the app (and before the security-headers layer) sees the request, so the
response carries the two headers that matter for an error body itself.
"""

from __future__ import annotations

import json

from starlette.types import Send


def refusal_message(status: int, error_code: str, message: str,
                    headers: dict[str, str] | None = None) -> tuple[dict, dict]:
    """The ``http.response.start`` and ``http.response.body`` messages of a refusal."""
    body = json.dumps({"error_code": error_code, "message": message}, separators=(",", ":")).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return ({"type": "http.response.start", "status": status, "headers": raw},
            {"type": "http.response.body", "body": body})


async def refuse(send: Send, status: int, error_code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
    """Send a complete MLflow-style error response."""
    start, body = refusal_message(status, error_code, message, headers)
    await send(start)
    await send(body)
