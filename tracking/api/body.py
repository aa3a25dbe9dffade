"""Strict request parsing: the body is read and parsed once, and fields are read with MLflow's rules.

The gateway's authorization step and the handler see the same parsed value (``request.state``),
so a request cannot show one resource id to the access check and another to the handler.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from tracking.errors import MlflowError, invalid_parameter
from tracking.services import DEFAULT_MAX_JSON_DEPTH, tracking_of

_STATE_KEY = "parsed_args"
MAX_JSON_DEPTH = DEFAULT_MAX_JSON_DEPTH


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if _CONTROL_CHARACTER.search(key):
            raise invalid_parameter(f"Invalid JSON: the key {key!r} contains a control character.")
        if key in out:
            raise invalid_parameter(f"Invalid JSON: the key {key!r} appears more than once.")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise invalid_parameter(f"Invalid JSON: {name} is not a JSON value.")


def _depth(value: Any, limit: int) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise invalid_parameter(f"Invalid JSON: nesting deeper than {limit} levels.")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a JSON object strictly: no duplicate keys, no control characters in keys, bounded depth."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MlflowError("Request body is not valid UTF-8.", "MALFORMED_REQUEST") from exc
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except MlflowError:
        raise
    except RecursionError as exc:
        raise invalid_parameter(f"Invalid JSON: nesting deeper than {max_depth} levels.") from exc
    except ValueError as exc:
        raise MlflowError(f"Malformed JSON in request body: {exc.msg}.", "MALFORMED_REQUEST") from exc
    if not isinstance(value, dict):
        raise MlflowError("The request body must be a JSON object.", "MALFORMED_REQUEST")
    _depth(value, max_depth)
    if _SURROGATE_ESCAPE.search(text):
        _reject_lone_surrogates(value)
    return value


# A "\ud800"-style escape without its pair decodes to a lone surrogate, which neither the database
# drivers nor a UTF-8 response can encode; only bodies containing such an escape are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_lone_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise invalid_parameter("Invalid JSON: a string contains an unpaired UTF-16 surrogate.") from None


class Args:
    """Typed access to a request's fields (query string for GET, JSON body otherwise)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]):
        self._data = data

    @property
    def data(self) -> Mapping[str, Any]:
        """The raw parsed fields."""
        return self._data

    def __contains__(self, name: str) -> bool:
        return name in self._data and self._data[name] is not None

    def raw(self, name: str, default: Any = None) -> Any:
        """The field's value without conversion."""
        return self._data.get(name, default)

    def _missing(self, name: str) -> MlflowError:
        return invalid_parameter(
            f"Missing value for required parameter '{name}'. "
            "See the API docs for more information about request parameters."
        )

    def _wrong_type(self, name: str, value: Any, expected: str) -> MlflowError:
        shown = repr(value)
        if len(shown) > 100:
            shown = shown[:100] + "..."
        return invalid_parameter(
            f"Invalid value {shown} for parameter '{name}' supplied: expected {expected}, "
            f"got {type(value).__name__}."
        )

    def str(self, name: str, *, required: bool = False, default: str | None = None,
            max_length: int | None = None, allow_empty: bool = True) -> str | None:
        """A string field."""
        value = self._data.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or (value == "" and not allow_empty):
            if required:
                raise self._missing(name)
            return default
        if not isinstance(value, str):
            raise self._wrong_type(name, value, "a string")
        if max_length is not None and len(value) > max_length:
            raise invalid_parameter(
                f"Parameter '{name}' is {len(value)} characters long; the limit is {max_length}."
            )
        return value

    def int(self, name: str, *, required: bool = False, default: int | None = None,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
        """An integer field; int64 values may arrive as JSON strings (protobuf JSON mapping)."""
        value = self._data.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or value == "":
            if required:
                raise self._missing(name)
            return default
        if isinstance(value, bool):
            raise self._wrong_type(name, value, "an integer")
        if isinstance(value, int):
            result = value
        elif isinstance(value, float) and value.is_integer():
            result = int(value)
        elif isinstance(value, str):
            try:
                result = int(value.strip())
            except ValueError:
                raise self._wrong_type(name, value, "an integer") from None
        else:
            raise self._wrong_type(name, value, "an integer")
        if not -(2**63) <= result < 2**63:
            raise invalid_parameter(f"Parameter '{name}' is out of the 64-bit integer range.")
        if minimum is not None and result < minimum:
            raise invalid_parameter(f"Parameter '{name}' must be at least {minimum}, got {result}.")
        if maximum is not None and result > maximum:
            raise invalid_parameter(f"Parameter '{name}' must be at most {maximum}, got {result}.")
        return result

    def float(self, name: str, *, required: bool = False, default: float | None = None) -> float | None:
        """A double field; "NaN", "Infinity" and "-Infinity" strings are accepted as protobuf JSON allows."""
        value = self._data.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None:
            if required:
                raise self._missing(name)
            return default
        return to_double(name, value)

    def bool(self, name: str, *, default: bool | None = None) -> bool | None:
        """A boolean field (``true``/``false`` in a query string)."""
        value = self._data.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self._wrong_type(name, value, "a boolean")

    def str_list(self, name: str, *, required: bool = False) -> list[str]:
        """A repeated string field (a JSON array, or a repeated query parameter)."""
        value = self._data.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong_type(name, value, "a list of strings")
        return value

    def obj_list(self, name: str) -> list[dict[str, Any]]:
        """A repeated message field: a JSON array of objects."""
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._wrong_type(name, value, "a list of objects")
        return value

    def obj(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        """A message field: a JSON object."""
        value = self._data.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if not isinstance(value, dict):
            raise self._wrong_type(name, value, "an object")
        return value


def to_double(name: str, value: Any) -> float:
    """Convert a JSON number or protobuf special-value string to a float, else 400."""
    if isinstance(value, bool):
        raise invalid_parameter(f"Invalid value {value!r} for parameter '{name}' supplied: expected a number.")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer literal beyond the double range
            raise invalid_parameter(f"Parameter '{name}' is out of the 64-bit floating point range.") from None
    if isinstance(value, str):
        special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf,
                   "-inf": -math.inf}
        if value.strip().lower() in special:
            return special[value.strip().lower()]
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid_parameter(f"Invalid value {value!r:.100} for parameter '{name}' supplied: expected a number.")


def _query_dict(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            existing = out[key]
            out[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[key] = value
    return out


def check_json_content_type(content_type: str | None, body: bytes) -> None:
    """A body read as JSON must be declared ``application/json``, as MLflow's server requires.

    A cross-site HTML form can send only ``text/plain``, ``application/x-www-form-urlencoded`` or
    ``multipart/form-data`` without a CORS preflight (Fetch standard, "CORS-safelisted request-header"), so
    refusing every other type for JSON writes closes the classic CSRF shape even where Origin checks are
    bypassed. MLflow's clients always send ``application/json``; a request without a body needs no type.
    """
    if content_type is None:
        if body.strip():
            raise invalid_parameter("Bad Request. Content-Type header is missing.")
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise invalid_parameter(f"Bad Request. Content-Type must be one of ['application/json'], "
                                f"got {media_type[:100]!r}.")


async def request_args(request: Request) -> Args:
    """The request's fields, parsed once and cached on the request.

    GET requests carry their fields in the query string. Other methods carry a JSON body; MLflow's
    client also sends some DELETE requests with a JSON body and some with a query string, so both are
    merged (body wins; a field present in both with different values is refused as ambiguous). A body
    must be declared ``application/json`` (:func:`check_json_content_type`).
    """
    cached = getattr(request.state, _STATE_KEY, None)
    if cached is not None:
        return cached
    query = _query_dict(request)
    if request.method in ("GET", "HEAD"):
        args = Args(query)
    else:
        # The composition root passed the depth limit when it built tracking (the gateway's network limits).
        depth = tracking_of(request).max_json_depth
        raw = await request.body()
        check_json_content_type(request.headers.get("content-type"), raw)
        body = parse_json_object(raw, max_depth=depth)
        for key, value in query.items():
            if key in body and body[key] != value:
                raise invalid_parameter(f"Parameter '{key}' is given in both the query string and the body.")
            body.setdefault(key, value)
        args = Args(body)
    setattr(request.state, _STATE_KEY, args)
    return args
