"""The authenticated identity of one request: built once, frozen, passed on as a value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.token_scope import TokenScope

PrincipalKind = Literal["user", "service"]
AuthMethod = Literal["basic", "token", "session", "trusted_header"] | str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a human user or a service account, and how they proved it."""

    id: int
    kind: PrincipalKind
    name: str
    is_admin: bool
    groups: frozenset[str]
    auth_method: AuthMethod
    # The personal access token used, when the request carried one (for audit and revocation).
    token_id: str | None = None
    # A read-only token may only read, whatever its owner could do.
    read_only: bool = False
    # A scoped token's limits (resource patterns, workspaces, client networks); None: not scoped.
    token_scope: TokenScope | None = None
