"""Personal access tokens: ``mlg_`` + 256 random bits, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "mlg_"
# 32 random bytes in URL-safe base64 are 43 characters; the prefix lets secret scanners find leaks.
TOKEN_PATTERN = re.compile(r"^mlg_[A-Za-z0-9_-]{43}$")
# Query parameter names under which clients commonly (and wrongly) send tokens.
TOKEN_QUERY_NAMES = frozenset({"access_token", "token", "api_key", "apikey", "private_token"})


def new_token() -> str:
    """A fresh token secret (never stored; only its hash is)."""
    return PREFIX + secrets.token_urlsafe(32)


def new_token_id() -> str:
    """The public id of a token, used to list and revoke it."""
    return secrets.token_hex(8)


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the shape of an mlgate token."""
    return bool(TOKEN_PATTERN.match(value))


def token_hash(token: str) -> str:
    """SHA-256 hex of the token: a 256-bit random secret needs no salt or slow hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def query_carries_token(params: list[tuple[str, str]]) -> bool:
    """Whether a query string carries a credential (refused: URLs end up in logs and histories)."""
    return any(k.lower() in TOKEN_QUERY_NAMES or looks_like_token(v) for k, v in params)
