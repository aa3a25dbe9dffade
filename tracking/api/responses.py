"""Fast JSON responses in MLflow's shape."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response

from tracking.errors import MlflowError


class JSONBody(Response):
    """A compact UTF-8 JSON response; NaN/Infinity become the strings protobuf JSON uses (json_double)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content`` compactly (orjson: several times faster than the standard library)."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


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
