"""Compile a validated ``access:`` section and the API grants into frozen, indexed structures.

Compilation does all the work that does not depend on the request: grants are indexed by
principal, resource kind and resource id; name patterns are compiled and sorted most specific
first; group memberships are inverted. ``decide()`` then only looks things up.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from policies.file.access import AccessConfig
from policies.file.document import PolicyFile
from policies.glob import compile_glob, specificity
from policies.model import Grant, Permission, ResourceKind, ResourceSelector, Subject, SubjectRef


@dataclass(frozen=True)
class IndexedGrant:
    """A grant with its precomputed matcher and precedence ``rank`` (higher wins)."""

    grant: Grant
    rank: tuple[int, ...]
    matcher: re.Pattern[str] | None

    def matches(self, resource_id: str | None, name: str | None) -> bool:
        """Whether this grant covers the resource with this id and name."""
        selector = self.grant.resource
        if self.matcher is not None:
            return name is not None and self.matcher.fullmatch(name) is not None
        if selector.name is not None:
            return name is not None and name == selector.name
        return resource_id is not None and resource_id == selector.id


_NO_NAMES: Mapping[str, tuple] = MappingProxyType({})
_NO_CLAIMS: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class KindIndex:
    """One principal's grants (or denies) on one resource kind."""

    by_id: Mapping[str, tuple[IndexedGrant, ...]]
    patterns: tuple[IndexedGrant, ...]  # most specific first
    # All patterns as one alternation: a name matching none (the usual case) costs one regex call.
    any_pattern: re.Pattern[str] | None = None
    by_name: Mapping[str, tuple[IndexedGrant, ...]] = field(default_factory=lambda: _NO_NAMES)  # model:<name>

    def matching(self, resource_id: str | None, name: str | None) -> list[IndexedGrant]:
        """Every grant here that covers the resource."""
        found = list(self.by_id.get(resource_id, ())) if resource_id is not None else []
        if name is not None and self.by_name:
            found.extend(self.by_name.get(name, ()))
        if name is not None and self.any_pattern is not None and self.any_pattern.fullmatch(name):
            found.extend(g for g in self.patterns if g.matches(resource_id, name))
        return found


_EMPTY_KIND = KindIndex(MappingProxyType({}), ())


def _alternation(patterns: tuple[IndexedGrant, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{g.matcher.pattern})" for g in patterns if g.matcher is not None), re.DOTALL)


@dataclass(frozen=True)
class CreateRule:
    """A compiled ``access.create`` rule."""

    principal: str  # a principal key, or "*" for any signed-in principal
    pattern: str
    matcher: re.Pattern[str]
    rule: str


@dataclass(frozen=True)
class Condition:
    """A compiled ``access.conditions`` entry: on matching resources, when it holds, only ``only`` may act at
    ``permission`` or above."""

    rule: str
    selector: IndexedGrant  # which resources (its matcher; the grant's subject is irrelevant)
    alias: re.Pattern[str] | None
    alias_text: str | None
    tags: tuple[tuple[str, str], ...]
    permission: Permission
    only: frozenset[str]

    def applies(self, resource_id: str | None, name: str | None, tags, alias: str | None) -> bool:
        """Whether the condition holds for this resource and request (unknown tags: it holds, fail closed)."""
        if not self.selector.matches(resource_id, name):
            return False
        if self.alias is not None:
            return alias is not None and self.alias.fullmatch(alias) is not None
        return tags is None or all(tag in tags for tag in self.tags)

    def describe(self) -> str:
        """What the condition is about, for reasons."""
        if self.alias_text is not None:
            return f"the alias {self.alias_text!r}"
        return "tags " + ", ".join(f"{k}={v}" for k, v in self.tags)


@dataclass(frozen=True)
class CompiledPolicy:
    """Everything ``decide()`` and ``visible()`` need, frozen and indexed."""

    mode: str
    default_permission: Permission
    admins: frozenset[str]
    memberships: Mapping[str, frozenset[str]]  # principal key -> file-declared groups
    allows: Mapping[tuple[str, ResourceKind], KindIndex]  # (principal key, kind) -> grants
    denies: Mapping[tuple[str, ResourceKind], KindIndex]
    create: Mapping[ResourceKind, tuple[CreateRule, ...] | None]
    refused_api_grants: tuple[tuple[Grant, str], ...]  # (grant, why) dropped in authoritative mode
    # Every principal's allow grants by name (patterns and exact names), per kind: which names others were
    # promised access to, so that nobody else can create a resource there first (see decide's step 7).
    claims: Mapping[ResourceKind, KindIndex] = field(default_factory=lambda: _NO_CLAIMS)
    # The principal each claim's grant names, by the grant's rule (a claim of a group the subject does not
    # count here, see Subject.foreign_groups, is left out).
    claimants: Mapping[str, str] = field(default_factory=lambda: _NO_CLAIMS)
    # Every grant's expiry (epoch ms), sorted: a decision or visibility computed at one time stays true
    # until the next of them (see next_expiry), which is how long the gateway may reuse it.
    expiries: tuple[int, ...] = ()
    # access.conditions, per resource kind, in file order.
    conditions: Mapping[ResourceKind, tuple[Condition, ...]] = field(default_factory=lambda: _NO_CLAIMS)

    @property
    def needs_tags(self) -> bool:
        """Whether some condition looks at resource tags (the gateway then loads them)."""
        return any(c.tags for found in self.conditions.values() for c in found)

    def next_expiry(self, now_ms: int) -> int | None:
        """The first grant expiry after ``now_ms`` (None: no grant expires later)."""
        index = bisect.bisect_right(self.expiries, now_ms)
        return self.expiries[index] if index < len(self.expiries) else None

    def is_admin(self, subject: Subject) -> bool:
        """Admin by the identity layer's flag or by the file's ``access.admins``."""
        return subject.kind != "anonymous" and (subject.is_admin or subject.key in self.admins)

    def principal_keys(self, subject: Subject) -> tuple[str, ...]:
        """The subject's own key, then its groups' keys (identity-layer and file-declared), sorted."""
        groups = set(subject.groups) | self.memberships.get(subject.key, frozenset())
        return (subject.key, *sorted(f"group:{g}" for g in groups))

    def allow_index(self, key: str, kind: ResourceKind) -> KindIndex:
        """The allow grants of one principal on one kind."""
        return self.allows.get((key, kind), _EMPTY_KIND)

    def deny_index(self, key: str, kind: ResourceKind) -> KindIndex:
        """The denies of one principal on one kind."""
        return self.denies.get((key, kind), _EMPTY_KIND)


def rank(grant: Grant, order: int) -> tuple[int, ...]:
    """Precedence of a grant; the highest applicable one decides (see the docstring of decide.py).

    (resource id over exact name over pattern, longer literal prefix, more literal characters, the
    principal's own grant over a group's, higher permission, earlier position).
    """
    if grant.resource.id is not None:
        tier, prefix, literal = 3, 0, 0
    elif grant.resource.name is not None:
        tier, prefix, literal = 2, 0, 0
    else:
        tier = 1
        prefix, literal = specificity(grant.resource.pattern)
    direct = 0 if grant.subject.kind == "group" else 1
    return (tier, prefix, literal, direct, int(grant.permission), -order)


def _file_entries(file_grants: Iterable[Grant]) -> dict[tuple, Grant]:
    """The first file entry for each (principal, selector) pair."""
    entries: dict[tuple, Grant] = {}
    for existing in file_grants:
        entries.setdefault((existing.subject, existing.resource), existing)
    return entries


def _conflict_reason(existing: Grant, grant: Grant) -> str:
    return (f"{existing.rule} already decides {grant.subject.key} on {grant.resource.text} and the policy file is "
            "authoritative")


def conflict_with_file(file_grants: Iterable[Grant], grant: Grant) -> str | None:
    """Why an API grant conflicts with the file (same principal and resource selector), or None."""
    existing = _file_entries(file_grants).get((grant.subject, grant.resource))
    return None if existing is None else _conflict_reason(existing, grant)


def api_grant_conflict(file_config: PolicyFile | AccessConfig, grant: Grant) -> str | None:
    """Why the permission API must refuse ``grant`` (authoritative file, same entry), or None to accept it."""
    access = file_config.access if isinstance(file_config, PolicyFile) else file_config
    if access.mode != "authoritative":
        return None
    return conflict_with_file(access.file_grants(), grant)


def _ranked(found: dict[str, list[IndexedGrant]]) -> MappingProxyType:
    return MappingProxyType({k: tuple(sorted(gs, key=lambda g: g.rank, reverse=True)) for k, gs in found.items()})


def _index(grants: list[tuple[Grant, int]]) -> dict[tuple[str, ResourceKind], KindIndex]:
    by_id: dict[tuple[str, ResourceKind], dict[str, list[IndexedGrant]]] = {}
    by_name: dict[tuple[str, ResourceKind], dict[str, list[IndexedGrant]]] = {}
    patterns: dict[tuple[str, ResourceKind], list[IndexedGrant]] = {}
    for grant, order in grants:
        key = (grant.subject.key, grant.resource.kind)
        pattern = grant.resource.pattern
        indexed = IndexedGrant(grant, rank(grant, order), None if pattern is None else compile_glob(pattern))
        if pattern is not None:
            patterns.setdefault(key, []).append(indexed)
        elif grant.resource.name is not None:
            by_name.setdefault(key, {}).setdefault(grant.resource.name, []).append(indexed)
        else:
            by_id.setdefault(key, {}).setdefault(grant.resource.id, []).append(indexed)
    out = {}
    for key in by_id.keys() | by_name.keys() | patterns.keys():
        pats = tuple(sorted(patterns.get(key, []), key=lambda g: g.rank, reverse=True))
        out[key] = KindIndex(_ranked(by_id.get(key, {})), pats, _alternation(pats), _ranked(by_name.get(key, {})))
    return out


def _create_rules(rules, section: str) -> tuple[CreateRule, ...] | None:
    if rules is None:
        return None
    return tuple(CreateRule(r.principal, r.name, compile_glob(r.name), f"access.create.{section}[{i}]")
                 for i, r in enumerate(rules))


def compile_policy(file_config: PolicyFile | AccessConfig, api_grants: Iterable[Grant] = ()) -> CompiledPolicy:
    """Compile the file's ``access:`` section plus API-made grants into a :class:`CompiledPolicy`.

    In ``authoritative`` mode an API grant naming the same principal and resource selector as a
    file entry is dropped (and listed in ``refused_api_grants``); in ``additive`` mode both apply.
    """
    access = file_config.access if isinstance(file_config, PolicyFile) else file_config
    file_grants = access.file_grants()
    ordered: list[tuple[Grant, int]] = [(g, i) for i, g in enumerate(file_grants)]
    refused: list[tuple[Grant, str]] = []
    entries = _file_entries(file_grants) if access.mode == "authoritative" else {}
    for grant in api_grants:
        existing = entries.get((grant.subject, grant.resource))
        if existing is not None:
            refused.append((grant, _conflict_reason(existing, grant)))
        else:
            ordered.append((grant, len(ordered)))
    memberships: dict[str, set[str]] = {}
    for group, members in access.groups.items():
        for member in members:
            memberships.setdefault(member, set()).add(group)
    return CompiledPolicy(
        mode=access.mode,
        default_permission=Permission[access.default_permission],
        admins=frozenset(access.admins),
        memberships=MappingProxyType({k: frozenset(v) for k, v in memberships.items()}),
        allows=MappingProxyType(_index([(g, o) for g, o in ordered if g.effect == "allow"])),
        denies=MappingProxyType(_index([(g, o) for g, o in ordered if g.effect == "deny"])),
        create=MappingProxyType({
            ResourceKind.EXPERIMENT: _create_rules(access.create.experiments, "experiments"),
            ResourceKind.REGISTERED_MODEL: _create_rules(access.create.models, "models"),
        }),
        refused_api_grants=tuple(refused),
        claims=MappingProxyType(_claims([(g, o) for g, o in ordered if g.effect == "allow"])),
        claimants=MappingProxyType({g.rule: g.subject.key for g, _ in ordered
                                    if g.effect == "allow" and g.resource.id is None}),
        expiries=tuple(sorted({g.expires_at for g, _ in ordered if g.expires_at is not None})),
        conditions=MappingProxyType(_conditions(access)),
    )


def _conditions(access: AccessConfig) -> dict[ResourceKind, tuple[Condition, ...]]:
    out: dict[ResourceKind, list[Condition]] = {}
    for i, entry in enumerate(access.conditions):
        selector = ResourceSelector.parse(entry.resource)
        rule = f"access.conditions[{i}]"
        anchor = Grant(SubjectRef("user", "*"), selector, Permission.READ, "file", rule)
        indexed = IndexedGrant(anchor, (), None if selector.pattern is None else compile_glob(selector.pattern))
        out.setdefault(selector.kind, []).append(Condition(
            rule, indexed, None if entry.alias is None else compile_glob(entry.alias), entry.alias,
            tuple(sorted((entry.tags or {}).items())), Permission[entry.permission],
            frozenset(SubjectRef.parse(p).key for p in entry.only)))
    return {kind: tuple(found) for kind, found in out.items()}


def _claims(grants: list[tuple[Grant, int]]) -> dict[ResourceKind, KindIndex]:
    """The allow grants that name resources by name (pattern or exact), indexed per kind for any principal."""
    by_kind: dict[ResourceKind, list[tuple[Grant, int]]] = {}
    for grant, order in grants:
        if grant.resource.id is None:
            by_kind.setdefault(grant.resource.kind, []).append((grant, order))
    out = {}
    for kind, found in by_kind.items():
        # Indexed as if one principal held them all (the key is irrelevant here).
        merged = [(Grant(SubjectRef("user", "*"), g.resource, g.permission, g.source, g.rule, g.effect,
                         g.expires_at, g.break_glass), o)
                  for g, o in found]
        index = _index(merged)
        out[kind] = next(iter(index.values()))
    return out
