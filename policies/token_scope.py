"""Scoped tokens: what one access token may touch, whatever its owner may do.

A token's scope is fixed when it is created and intersects its owner's rights on every request: the
request must pass the scope *and* the owner's policy (``decide`` step 4). Nothing here grants anything.

Scope entries, as ``mlgate tokens create --scope`` and the token API take them:

* ``<LEVEL>:<selector>`` -- at most LEVEL (READ, EDIT or MANAGE) on the resources the selector names:
  ``experiment:<id>``, ``experiment-name:<glob>``, ``model:<name>``, ``model-name:<glob>``, or
  ``prompt-name:<glob>`` (prompts are registered models; the glob is matched against the prompt's name).
  With at least one such entry, every resource the token acts on must match one of them.
* ``workspace:<glob>`` -- the token is only good in workspaces whose name matches.

And separately, client networks (``--from-cidr 10.1.0.0/16``): the address the network layer resolved for
the request (the TCP peer, or the client a trusted proxy forwarded) must be in one of them.

A scoped token (any of the three) never manages credentials: it cannot create or revoke tokens or change a
password, or it could mint a broader credential. A token limited to resources also loses administrator
operations, which no resource pattern describes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass

from policies.glob import check_pattern, compile_glob
from policies.model import Decision, Permission, ResourceKind, ResourceSelector

MAX_ENTRIES = 50
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LEVELS = ("READ", "EDIT", "MANAGE")


@dataclass(frozen=True)
class ScopeRule:
    """At most ``permission`` on the resources ``selector`` names (``text`` is the entry as written)."""

    text: str
    kind: ResourceKind
    permission: Permission
    resource_id: str | None = None
    pattern: str | None = None  # a name glob; an exact name is a glob without wildcards
    prompts_only: bool = False

    def covers(self, kind: ResourceKind, resource_id: str | None, name: str | None) -> bool:
        """Whether the rule names this resource (by id or name)."""
        if kind is not self.kind:
            return False
        if self.resource_id is not None:
            return resource_id is not None and resource_id == self.resource_id
        return name is not None and compile_glob(self.pattern or "").fullmatch(name) is not None


@dataclass(frozen=True)
class TokenScope:
    """A token's limits. ``resources`` None: not limited by resource (only by workspace or network)."""

    resources: tuple[ScopeRule, ...] | None = None
    workspaces: tuple[str, ...] | None = None
    networks: tuple[IpNetwork, ...] | None = None

    @property
    def entries(self) -> list[str]:
        """The ``--scope`` entries, as written."""
        return [r.text for r in self.resources or ()] + [f"workspace:{w}" for w in self.workspaces or ()]

    @property
    def cidrs(self) -> list[str]:
        """The client networks, as text."""
        return [str(n) for n in self.networks or ()]

    def to_json(self) -> str:
        """The stored form (the token row's ``scope`` column)."""
        return json.dumps({"scope": self.entries, "cidrs": self.cidrs}, sort_keys=True)

    def describe(self) -> str:
        """A one-line summary for listings and audit reasons."""
        parts = self.entries + [f"from {c}" for c in self.cidrs]
        return ", ".join(parts)

    def visible_rules(self, kind: ResourceKind) -> tuple[ScopeRule, ...] | None:
        """The rules limiting what of ``kind`` the token may see (None: not limited by resource)."""
        if self.resources is None:
            return None
        return tuple(r for r in self.resources if r.kind is kind and r.permission >= Permission.READ)


def _rule(text: str) -> ScopeRule:
    level, sep, selector_text = text.partition(":")
    if not sep or level not in _LEVELS:
        raise ValueError(f"{text!r} is not LEVEL:<selector> (LEVEL one of {', '.join(_LEVELS)}) or "
                         "workspace:<glob>")
    permission = Permission[level]
    if selector_text.startswith("prompt-name:"):
        pattern = selector_text.removeprefix("prompt-name:")
        check_pattern(pattern)
        return ScopeRule(text, ResourceKind.REGISTERED_MODEL, permission, pattern=pattern, prompts_only=True)
    try:
        selector = ResourceSelector.parse(selector_text)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if selector.kind is ResourceKind.REGISTERED_MODEL and selector.id is not None:
        raise ValueError(f"{text!r}: name a registered model by name (model:<name>) or glob (model-name:<glob>)")
    if selector.name is not None:
        return ScopeRule(text, selector.kind, permission, pattern=_literal(selector.name))
    return ScopeRule(text, selector.kind, permission, resource_id=selector.id, pattern=selector.pattern)


def _literal(name: str) -> str:
    # An exact model name may contain the glob's wildcard characters, which would then match more.
    if "*" in name or "?" in name:
        raise ValueError(f"model:{name}: an exact name in a token scope cannot contain '*' or '?'; use "
                         "model-name:<glob>")
    check_pattern(name)
    return name


def parse_scope(entries: Iterable[str], cidrs: Iterable[str]) -> TokenScope | None:
    """The scope these entries and networks describe, None when both are empty; ValueError listing every problem."""
    entries, cidrs = list(entries), list(cidrs)
    problems: list[str] = []
    rules: list[ScopeRule] = []
    workspaces: list[str] = []
    networks: list[IpNetwork] = []
    if len(entries) > MAX_ENTRIES or len(cidrs) > MAX_ENTRIES:
        raise ValueError(f"a token scope has at most {MAX_ENTRIES} entries and {MAX_ENTRIES} networks")
    for text in entries:
        if not isinstance(text, str):
            problems.append(f"{text!r} is not a string")
        elif text.startswith("workspace:"):
            glob = text.removeprefix("workspace:")
            try:
                check_pattern(glob)
                workspaces.append(glob)
            except ValueError as exc:
                problems.append(f"{text!r}: {exc}")
        else:
            try:
                rules.append(_rule(text))
            except ValueError as exc:
                problems.append(str(exc))
    for text in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            problems.append(f"{text!r} is not an IP address or network (CIDR)")
    if problems:
        raise ValueError("; ".join(problems))
    if not rules and not workspaces and not networks:
        return None
    return TokenScope(tuple(rules) or None, tuple(workspaces) or None, tuple(networks) or None)


def load_scope(stored: str | None) -> TokenScope | None:
    """The scope of a stored token row; a row this version cannot read allows nothing (ValueError)."""
    if stored is None:
        return None
    data = json.loads(stored)
    return parse_scope(data.get("scope", []), data.get("cidrs", [])) or TokenScope(resources=())


def _client_in(networks: tuple[IpNetwork, ...], client: str | None) -> bool:
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def check_request(scope: TokenScope, who: str, *, client: str | None, workspace: str | None) -> Decision | None:
    """A denial when the request comes from outside the token's networks or workspaces, else None.

    An unknown client address or workspace is outside (fail closed).
    """
    if scope.networks is not None and not _client_in(scope.networks, client):
        return Decision(False, f"{who} uses a token limited to {', '.join(scope.cidrs)}; the request comes from "
                               f"{client or 'an unknown address'}", "token-scope:network")
    if scope.workspaces is not None and (
            workspace is None or not any(compile_glob(w).fullmatch(workspace) for w in scope.workspaces)):
        return Decision(False, f"{who} uses a token limited to workspace(s) {', '.join(scope.workspaces)}; the "
                               f"request is in {workspace or 'an unknown workspace'}", "token-scope:workspace")
    return None


def check_resource(scope: TokenScope, who: str, needed: Permission, kind: ResourceKind, resource_id: str | None,
                   name: str | None, *, is_prompt: bool | None, creating: bool = False) -> Decision | None:
    """A denial when no rule of the token's scope covers ``needed`` on this resource, else None."""
    if scope.resources is None:
        return None
    for rule in scope.resources:
        if creating and rule.resource_id is not None:
            continue  # an id names an existing experiment, never a name to create
        if rule.prompts_only and not is_prompt:
            continue  # a prompt rule covers prompts only (unknown, as for a create: not covered)
        if rule.covers(kind, resource_id, name) and rule.permission >= needed:
            return None
    target = f"{'a new ' if creating else ''}{kind.value.replace('_', ' ')} {name or resource_id or '(unknown)'!s}"
    return Decision(False, f"{who} uses a token whose scope ({scope.describe()}) does not allow {needed.name} on "
                           f"{target}", "token-scope")
