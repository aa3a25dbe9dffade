"""Read a locator's values out of a request, with the field-path rules of ``policies.routes``.

Pure: the gateway passes in what it already parsed (the strict request arguments, the route's path
parameters, the headers) and gets back the strings to look up. Keeping the path rules here means
the access check and its tests agree on exactly which value names the resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.routes import Locator, Source

MAX_VALUES = 1000  # a many-valued field (run_ids, trace_ids) naming more resources is refused


class LocatorError(ValueError):
    """The field that names the resource has the wrong shape (the gateway answers 400)."""


def _walk(data: Any, segments: list[str], where: str) -> list[Any] | None:
    """Values at ``segments`` below ``data``; None when the path is absent."""
    if not segments:
        return [data]
    segment, rest = segments[0], segments[1:]
    is_list = segment.endswith("[]")
    key = segment[:-2] if is_list else segment
    if not isinstance(data, Mapping):
        raise LocatorError(f"{where}: expected an object above '{key}'")
    if data.get(key) is None:
        return None
    value = data[key]
    if not is_list:
        return _walk(value, rest, where)
    if not isinstance(value, list):
        raise LocatorError(f"{where}: '{key}' must be a list")
    found: list[Any] = []
    for item in value:
        below = _walk(item, rest, where)
        if below is not None:
            found.extend(below)
    return found


def _as_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids sent as JSON numbers name the same resource as their decimal text
    raise LocatorError(f"{where} must be a string")


def locate(locator: Locator, args: Mapping[str, Any], path_params: Mapping[str, Any],
           headers: Mapping[str, str]) -> tuple[str, ...] | None:
    """The values naming the resource, or None when no alternative field is present.

    ``headers`` must be keyed by lower-case name. A repeated query parameter or a JSON list counts
    as several values only for ``many`` locators; otherwise it is a :class:`LocatorError`.
    """
    source = {Source.ARGS: args, Source.PATH: path_params, Source.HEADER: headers}[locator.source]
    for field in locator.fields:
        values = _walk(source, field.split("."), field)
        if values is None:
            continue
        if len(values) == 1 and isinstance(values[0], list):
            if not locator.many:
                raise LocatorError(f"{field} must be a single value")
            values = values[0]
        if not locator.many and len(values) != 1:
            raise LocatorError(f"{field} must be a single value")
        limit = MAX_VALUES if locator.max_values is None else min(locator.max_values, MAX_VALUES)
        if len(values) > limit:
            raise LocatorError(f"{field} names more than {limit} resources ({len(values)} given)")
        return tuple(_as_text(v, field) for v in values)
    return None
