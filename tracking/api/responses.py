"""Fast JSON responses in MLflow's shape."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

from tracking.errors import MlflowError


def _default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JSONBody(Response):
    """A compact JSON response; NaN/Infinity become the strings protobuf JSON uses."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content`` compactly."""
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=_default,
                          allow_nan=False).encode("utf-8")


def ok(payload: dict[str, Any] | None = None, status_code: int = 200) -> JSONBody:
    """A 200 response with MLflow's JSON body (``{}`` when empty)."""
    return JSONBody(payload or {}, status_code=status_code)


def error_response(err: MlflowError) -> JSONBody:
    """The response for an :class:`MlflowError`."""
    return JSONBody(err.to_dict(), status_code=err.status)


def json_double(value: float) -> float | str:
    """A double as protobuf JSON writes it: finite numbers as numbers, the rest as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
