"""SCIM request parsing: errors, filters, PATCH operations and the loose shapes real providers send.

Pure functions over decoded JSON; the gateway does the HTTP. Identity providers differ in small ways the
RFC allows or tolerates: Entra ID capitalises ``op`` ("Replace") and sends booleans as the strings
"True"/"False"; Okta sends a PATCH ``value`` object without a ``path``; both name group members with
``members[value eq "..."]`` paths. Each is accepted here and nothing else is guessed: an unsupported filter
or path is a 400 with the RFC's ``scimType`` (RFC 7644 section 3.12), never silently ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MAX_FILTER_LENGTH = 1000
MAX_OPERATIONS = 100


class ScimError(Exception):
    """A SCIM error response (RFC 7644 section 3.12): HTTP status, optional ``scimType`` and a detail."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def body(self) -> dict:
        """The error body; ``status`` is a string, as the RFC's schema says."""
        out = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            out["scimType"] = self.scim_type
        return out


def invalid_value(detail: str) -> ScimError:
    """400 invalidValue: a required value is missing or a value is not acceptable."""
    return ScimError(400, detail, "invalidValue")


def not_found(kind: str, resource_id: str) -> ScimError:
    """404 for a resource that does not exist (or that SCIM does not manage)."""
    return ScimError(404, f"{kind} {resource_id} not found")


def decode_json(raw: bytes) -> dict:
    """The request body as a JSON object, or 400 invalidSyntax."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ScimError(400, "The request body is not valid JSON.", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    return body


def as_bool(value: object, attribute: str) -> bool:
    """A SCIM boolean; Entra ID sends "True"/"False" strings, which mean the same."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid_value(f"{attribute} must be a boolean, got {json.dumps(value)[:40]}")


def as_text(value: object, attribute: str, *, max_length: int = 255, required: bool = False) -> str | None:
    """A SCIM string attribute (None allowed unless required), bounded, without control characters."""
    if value is None:
        if required:
            raise invalid_value(f"{attribute} is required")
        return None
    if not isinstance(value, str):
        raise invalid_value(f"{attribute} must be a string")
    if len(value) > max_length or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise invalid_value(f"{attribute} must be at most {max_length} printable characters")
    if required and not value:
        raise invalid_value(f"{attribute} is required")
    return value


# --- filters (RFC 7644 section 3.4.2.2) ------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """``attribute eq value``: the only operator supported, joined by ``and`` (what providers send)."""

    attribute: str  # lower-case, without the schema URN
    value: str | bool | None


_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<bracket>[\[\]])|(?P<word>[^\s\[\]"]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ScimError(400, "The filter is not valid.", "invalidFilter")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _literal(kind: str, text: str) -> str | bool | None:
    if kind == "string":
        try:
            return json.loads(text)
        except ValueError:
            raise ScimError(400, "The filter has a malformed string.", "invalidFilter") from None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    raise ScimError(400, f"The filter compares with {text[:40]!r}; quote strings.", "invalidFilter")


def attribute_name(path: str, schema: str) -> str:
    """An attribute path without its schema URN prefix, lower-cased (names are case-insensitive)."""
    lowered = path.lower()
    prefix = schema.lower() + ":"
    if lowered.startswith(prefix):
        lowered = lowered[len(prefix):]
    return lowered


def parse_filter(text: str, schema: str, allowed: frozenset[str]) -> list[Comparison]:
    """``a eq "x" and b eq "y"`` as comparisons; anything else is 400 invalidFilter."""
    if len(text) > MAX_FILTER_LENGTH:
        raise ScimError(400, f"The filter is longer than {MAX_FILTER_LENGTH} characters.", "invalidFilter")
    tokens = _tokens(text)
    comparisons, i = [], 0
    while True:
        # attr[value eq "x"] (a value filter on a multi-valued attribute) is the same as attr.value eq "x".
        if i + 6 <= len(tokens) and tokens[i][0] == "word" and tokens[i + 1] == ("bracket", "[") \
                and tokens[i + 5] == ("bracket", "]"):
            attr = f"{tokens[i][1]}.{tokens[i + 2][1]}"
            op, (value_kind, value_text) = tokens[i + 3], tokens[i + 4]
            i += 6
        elif i + 3 <= len(tokens) and tokens[i][0] == "word":
            attr, op, (value_kind, value_text) = tokens[i][1], tokens[i + 1], tokens[i + 2]
            i += 3
        else:
            raise ScimError(400, "The filter is not valid.", "invalidFilter")
        name = attribute_name(attr, schema)
        if op[0] != "word" or op[1].lower() != "eq":
            raise ScimError(400, f"Only the eq operator is supported, not {op[1][:10]!r}.", "invalidFilter")
        if name not in allowed:
            raise ScimError(400, f"Filtering on {attr[:60]!r} is not supported.", "invalidFilter")
        comparisons.append(Comparison(name, _literal(value_kind, value_text)))
        if i == len(tokens):
            return comparisons
        if tokens[i][0] != "word" or tokens[i][1].lower() != "and":
            raise ScimError(400, "Only 'and' may join comparisons.", "invalidFilter")
        i += 1


# --- PATCH (RFC 7644 section 3.5.2) ----------------------------------------------------------------
@dataclass(frozen=True)
class PatchPath:
    """A PATCH target: ``attribute``, with ``sub`` after a dot, and ``match`` from ``attr[x eq "v"]``."""

    attribute: str | None  # None: no path (the value is an object of attributes)
    sub: str | None = None
    match: Comparison | None = None


_PATH = re.compile(r'^(?P<attr>[A-Za-z0-9_.:$-]+?)(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z0-9_$]+))?$')


def parse_path(path: object, schema: str) -> PatchPath:
    """A PATCH ``path``, or 400 invalidPath."""
    if path is None:
        return PatchPath(None)
    if not isinstance(path, str) or len(path) > 300:
        raise ScimError(400, "The PATCH path must be a string.", "invalidPath")
    match = _PATH.match(path.strip())
    if match is None:
        raise ScimError(400, f"The PATCH path {path[:80]!r} is not supported.", "invalidPath")
    attr = attribute_name(match.group("attr"), schema)
    sub = match.group("sub").lower() if match.group("sub") else None
    if "." in attr and match.group("filter") is None and not attr.startswith("urn:"):
        attr, _, sub = attr.partition(".")
    condition = None
    if match.group("filter") is not None:
        comparisons = parse_filter(match.group("filter"), schema, frozenset({"value", "type"}))
        if len(comparisons) != 1:
            raise ScimError(400, f"The PATCH path {path[:80]!r} is not supported.", "invalidPath")
        condition = comparisons[0]
    return PatchPath(attr, sub, condition)


@dataclass(frozen=True)
class Operation:
    """One PATCH operation: ``op`` lower-cased (providers send "Add", "Replace", "Remove")."""

    op: str
    path: PatchPath
    value: object


def parse_patch(body: dict, schema: str) -> list[Operation]:
    """The operations of a PatchOp request, or 400."""
    if PATCH_SCHEMA not in (body.get("schemas") or []):
        raise invalid_value(f"A PATCH request must name the schema {PATCH_SCHEMA}")
    raw = body.get("Operations", body.get("operations"))
    if not isinstance(raw, list) or not raw:
        raise invalid_value("A PATCH request needs a non-empty Operations list")
    if len(raw) > MAX_OPERATIONS:
        raise invalid_value(f"A PATCH request may hold at most {MAX_OPERATIONS} operations")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise invalid_value("Each operation must be an object")
        op = item.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "remove", "replace"):
            raise invalid_value("Each operation's op must be add, remove or replace")
        path = parse_path(item.get("path"), schema)
        if path.attribute is None and op.lower() == "remove":
            raise ScimError(400, "A remove operation needs a path.", "noTarget")
        if path.attribute is None and not isinstance(item.get("value"), dict):
            raise invalid_value("An operation without a path needs an object value")
        out.append(Operation(op.lower(), path, item.get("value")))
    return out


def member_ids(value: object) -> list[str]:
    """The ``value`` of each member object (a list, or Okta's single object), as strings."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str | int) \
                or isinstance(item.get("value"), bool):
            raise invalid_value("Each member must be an object with a value (the member's id)")
        out.append(str(item["value"]))
    return out


MAX_START_INDEX = 2**31 - 1


def paging(start_index: str | None, count: str | None, max_results: int) -> tuple[int, int]:
    """``startIndex`` (1-based) and ``count`` (RFC 7644 section 3.4.2.4): below 1 means 1, below 0 means 0,
    above the server's maximum means the maximum. A startIndex past :data:`MAX_START_INDEX` (more rows than
    any table holds) means that one, an empty page, rather than an offset the database cannot take."""
    try:
        start = int(start_index) if start_index not in (None, "") else 1
        size = int(count) if count not in (None, "") else max_results
    except ValueError:
        raise invalid_value("startIndex and count must be integers") from None
    return min(max(start, 1), MAX_START_INDEX), min(max(size, 0), max_results)
