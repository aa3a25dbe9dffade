"""Opaque page tokens bound to the query that produced them.

A token carries an offset and a fingerprint of the query (filter, order, experiment ids, view type,
visibility scope). A token from another query, a forged or truncated one, or one with a negative
offset is refused with 400 instead of silently paging through a different result set. Tokens are not
secret: they reveal only an offset and a hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from tracking.errors import invalid_parameter

MAX_TOKEN_LENGTH = 512
# Larger offsets cannot be meaningful and could overflow a database's 64-bit OFFSET.
MAX_OFFSET = 2**53
_VERSION = 1


def fingerprint(*parts: object) -> str:
    """A stable short hash of JSON-serializable query parts (same value in every process)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=_sorted_set)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def _sorted_set(value: object) -> object:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be fingerprinted")


def _checksum(offset: int, fp: str) -> str:
    return hashlib.sha256(f"{_VERSION}:{offset}:{fp}".encode()).hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    """A token that resumes the query with this fingerprint at ``offset``."""
    if offset < 0:
        raise ValueError("offset must not be negative")
    body = {"v": _VERSION, "o": offset, "f": fingerprint[:32], "c": _checksum(offset, fingerprint[:32])}
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str | None, fingerprint: str) -> int:
    """The offset a token resumes at (0 for no token); a bad or foreign token gets a 400."""
    if token is None or token == "":
        return 0
    bad = invalid_parameter("Invalid page_token: it is malformed or was not issued by this server.")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(body, dict) or set(body) != {"v", "o", "f", "c"} or body["v"] != _VERSION:
        raise bad
    offset, fp, check = body["o"], body["f"], body["c"]
    if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(fp, str):
        raise bad
    if not isinstance(check, str) or check != _checksum(offset, fp):
        raise bad
    if offset < 0 or offset > MAX_OFFSET:
        raise invalid_parameter(f"Invalid page_token: offset {offset} is out of range.")
    if fp != fingerprint[:32]:
        raise invalid_parameter(
            "Invalid page_token: it belongs to a different query (the filter, order, experiments or "
            "view changed); start again without a page_token."
        )
    return offset
