"""The values authorization works with: permissions, subjects, resources, grants and decisions.

All are frozen, so a compiled policy and a request's subject can be shared between threads and
cached without copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Literal

from policies.glob import check_pattern, glob_matches


class Permission(IntEnum):
    """MLflow's permission levels, ordered so that ``held >= required`` answers a check.

    READ views a resource; EDIT also logs to it and updates it; MANAGE also deletes it and grants
    others access (MLflow's ``can_read``/``can_update``/``can_delete``+``can_manage``).
    """

    NO_PERMISSIONS = 0
    READ = 1
    EDIT = 2
    MANAGE = 3

    @classmethod
    def parse(cls, text: str) -> Permission:
        """The permission named ``text`` (exact, upper-case); ValueError otherwise."""
        try:
            return cls[text]
        except KeyError:
            raise ValueError(f"{text!r} is not one of {', '.join(p.name for p in cls)}") from None


PERMISSION_NAMES: tuple[str, ...] = tuple(p.name for p in Permission)
# A deny entry names the lowest level it vetoes; vetoing NO_PERMISSIONS would mean nothing.
DENY_LEVEL_NAMES: tuple[str, ...] = ("READ", "EDIT", "MANAGE")


class ResourceKind(StrEnum):
    """What a permission is held on. ``user`` is only used by self-service user operations."""

    EXPERIMENT = "experiment"
    REGISTERED_MODEL = "registered_model"
    USER = "user"
    NONE = "none"


SubjectKind = Literal["user", "service", "anonymous"]
PrincipalKind = Literal["user", "group", "service"]
GrantSource = Literal["file", "api"]
Effect = Literal["allow", "deny"]

# Names of users, groups and services: printable, no whitespace, no ':' (it separates the kind).
_PRINCIPAL_NAME = re.compile(r"[^\s:\x00-\x1f\x7f]+")
EXPERIMENT_ID = re.compile(r"[0-9]{1,19}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Subject:
    """Who is asking, as the identity layer established it for one request."""

    kind: SubjectKind
    name: str = ""
    groups: frozenset[str] = frozenset()
    is_admin: bool = False
    read_only_token: bool = False
    # Groups whose grants by name claim nothing for this request: the role groups of other workspaces
    # (a workspace's roles promise names in that workspace only, so they never block a create elsewhere).
    foreign_groups: frozenset[str] = frozenset()
    # The limits of the access token used (policies.token_scope.TokenScope), None for an unscoped credential.
    # Typed loosely to keep this module free of the scope's imports; decide() reads it.
    token_scope: object | None = None
    # In a workspace other than 'default', the only principals whose grants by name (name patterns, exact model
    # names) count, for access and for claiming names: that workspace's role groups (``group:role@<id>``). A
    # name means another object in each workspace, so a name grant made outside the workspace's roles never
    # reaches into it. None (the 'default' workspace): every grant counts. Grants by id name one object and
    # count wherever it is.
    name_grants_from: frozenset[str] | None = None

    @classmethod
    def anonymous(cls) -> Subject:
        """The caller that presented no valid credentials."""
        return cls(kind="anonymous")

    @property
    def key(self) -> str:
        """The principal reference grants use for this subject (``user:alice``, ``service:ci``)."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Resource:
    """The object a request acts on, after the gateway resolved it (run -> experiment etc.).

    ``id`` never changes and is never reused (an experiment's id, a registered model's stable id);
    ``name`` is the current name, which name patterns and the file's ``model:<name>`` grants match.
    """

    kind: ResourceKind
    id: str | None = None
    name: str | None = None
    # For a registered model: whether it is a prompt (None: not known, which no prompt-only rule covers).
    is_prompt: bool | None = None
    # The resource's tags as (key, value) pairs, when the policy has conditions on tags (None: not loaded,
    # which every tag condition treats as matching: fail closed).
    tags: frozenset[tuple[str, str]] | None = None
    # The model alias the request names (set, delete or read an alias), for conditions on aliases.
    alias: str | None = None

    @classmethod
    def experiment(cls, experiment_id: str | int | None, name: str | None = None) -> Resource:
        """An experiment (and by inheritance its runs, traces, logged models, artifacts)."""
        return cls(ResourceKind.EXPERIMENT, None if experiment_id is None else str(experiment_id), name)

    @classmethod
    def registered_model(cls, model_id: str | None, name: str | None, *, is_prompt: bool | None = None) -> Resource:
        """A registered model (and its versions, aliases and tags): its stable id and its current name."""
        return cls(ResourceKind.REGISTERED_MODEL, model_id, name, is_prompt)

    @classmethod
    def user(cls, username: str) -> Resource:
        """A user account, target of self-service operations such as changing one's password."""
        return cls(ResourceKind.USER, username, username)

    @classmethod
    def none(cls) -> Resource:
        """No resource: the requirement does not concern one."""
        return cls(ResourceKind.NONE)

    def describe(self) -> str:
        """A short human label for reasons and audit lines."""
        label = {ResourceKind.EXPERIMENT: "experiment", ResourceKind.REGISTERED_MODEL: "registered model",
                 ResourceKind.USER: "user", ResourceKind.NONE: "no resource"}[self.kind]
        if self.kind is ResourceKind.NONE:
            return label
        if self.kind is ResourceKind.EXPERIMENT and self.name is not None:
            return f"{label} {self.id} ({self.name!r})"
        if self.kind is ResourceKind.REGISTERED_MODEL and self.name is not None:
            return f"{label} {self.name!r}"
        return f"{label} {self.id if self.id is not None else self.name!r}"


@dataclass(frozen=True)
class SubjectRef:
    """A principal a grant names: ``user:alice``, ``group:team-a`` or ``service:ci-bot``."""

    kind: PrincipalKind
    name: str

    @classmethod
    def parse(cls, text: str) -> SubjectRef:
        """Parse ``kind:name``; ValueError naming the accepted forms otherwise."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in ("user", "group", "service"):
            raise ValueError(f"{text!r} is not 'user:<name>', 'group:<name>' or 'service:<name>'")
        if not _PRINCIPAL_NAME.fullmatch(name):
            raise ValueError(f"{text!r} has an empty or invalid name (no spaces, ':' or control characters)")
        return cls(kind, name)  # type: ignore[arg-type]

    @property
    def key(self) -> str:
        """The canonical text form, also the index key in a compiled policy."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class ResourceSelector:
    """Which resources a grant covers: one by id, one by exact name, or every one whose name matches a glob.

    Written ``experiment:<id>``, ``experiment-name:<glob>``, ``model:<name>`` or ``model-name:<glob>``.
    Globs know ``*`` (any run of characters, ``/`` included) and ``?`` (one character).
    ``model:<name>`` names whichever registered model has that name (policy-file grants mean that);
    ``model-id:<id>`` is one registered model by its stable id, the form stored grants take, so they
    follow the model through a rename and never reach a later model of the same name.
    """

    kind: ResourceKind
    id: str | None = None
    pattern: str | None = None
    name: str | None = None  # an exact name (model:<name>)

    @classmethod
    def parse(cls, text: str) -> ResourceSelector:
        """Parse the selector syntax; ValueError naming the accepted forms otherwise."""
        prefix, sep, value = text.partition(":")
        forms = "'experiment:<id>', 'experiment-name:<glob>', 'model:<name>' or 'model-name:<glob>'"
        if not sep or prefix not in ("experiment", "experiment-name", "model", "model-name", "model-id"):
            raise ValueError(f"{text!r} is not {forms}")
        if not value or _CONTROL.search(value):
            raise ValueError(f"{text!r} has an empty value or control characters")
        if prefix == "experiment":
            if not EXPERIMENT_ID.fullmatch(value):
                raise ValueError(f"{text!r}: an experiment id is a decimal number")
            return cls(ResourceKind.EXPERIMENT, id=value)
        if prefix == "model":
            return cls(ResourceKind.REGISTERED_MODEL, name=value)
        if prefix == "model-id":
            return cls(ResourceKind.REGISTERED_MODEL, id=value)
        check_pattern(value)
        kind = ResourceKind.EXPERIMENT if prefix == "experiment-name" else ResourceKind.REGISTERED_MODEL
        return cls(kind, pattern=value)

    @property
    def text(self) -> str:
        """The canonical selector syntax."""
        if self.kind is ResourceKind.EXPERIMENT:
            return f"experiment:{self.id}" if self.id is not None else f"experiment-name:{self.pattern}"
        if self.id is not None:
            return f"model-id:{self.id}"
        return f"model:{self.name}" if self.name is not None else f"model-name:{self.pattern}"


@dataclass(frozen=True)
class Grant:
    """One rule: ``subject`` holds ``permission`` on ``resource`` (allow), or may never reach it (deny).

    A deny grant's ``permission`` is the lowest level it vetoes: deny EDIT leaves READ possible.
    ``rule`` names where the grant came from (``access.grants[3]``, ``api-grant:17``) so decisions
    can cite it.
    """

    subject: SubjectRef
    resource: ResourceSelector
    permission: Permission
    source: GrantSource
    rule: str
    effect: Effect = "allow"
    # Epoch milliseconds from which the grant no longer applies (None: it does not expire). decide() compares
    # it with the clock of the request, so an expiry counts at that moment on every process.
    expires_at: int | None = None
    # A break-glass grant: emergency access an administrator gave for a limited time (always expires).
    break_glass: bool = False

    def __post_init__(self) -> None:
        if self.effect == "deny" and self.permission is Permission.NO_PERMISSIONS:
            raise ValueError(f"{self.rule}: a deny must name READ, EDIT or MANAGE (the lowest level it vetoes)")
        if self.effect == "allow" and self.resource.pattern is not None and self.permission < Permission.READ:
            # Visibility scopes treat a name-pattern exclusion as absolute; an overridable
            # NO_PERMISSIONS pattern could not be expressed there, so carving out is a deny's job.
            raise ValueError(
                f"{self.rule}: NO_PERMISSIONS cannot be granted on a name pattern; use a deny to exclude resources"
            )

        if self.break_glass and self.expires_at is None:
            raise ValueError(f"{self.rule}: a break-glass grant must expire")

    def expired(self, now_ms: int | None) -> bool:
        """Whether the grant no longer applies at ``now_ms`` (an unknown time counts as after every expiry)."""
        return self.expires_at is not None and (now_ms is None or now_ms >= self.expires_at)

    @classmethod
    def from_api(cls, grant_id: int | str, subject: str, resource: str, permission: str,
                 effect: Effect = "allow", *, expires_at: int | None = None, break_glass: bool = False) -> Grant:
        """A grant made through the permission API or CLI, cited as ``api-grant:<id>``."""
        return cls(SubjectRef.parse(subject), ResourceSelector.parse(resource), Permission.parse(permission),
                   "api", f"api-grant:{grant_id}", effect, expires_at, break_glass)


@dataclass(frozen=True)
class RequestContext:
    """What a decision may depend on besides the subject and the resource: the time, where the request comes
    from, and its workspace. Every field unknown is the safe reading: expiring grants count as expired and
    tokens limited to networks or workspaces are refused."""

    now_ms: int | None = None
    client: str | None = None
    workspace: str | None = None


UNKNOWN_CONTEXT = RequestContext()


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization check, with a human reason and the rule that decided it."""

    allowed: bool
    reason: str
    rule: str | None = None
    # Allowed through a break-glass grant: the gateway audits every such use as its own event.
    break_glass: bool = False


@dataclass(frozen=True)
class ScopeSpec:
    """Which resources of one kind a subject may see (READ); the gateway turns it into a SQL scope.

    Visible = not (id in ``denied_ids`` or name in ``denied_names`` or name matches a ``denied_globs``
    entry) and (id in ``ids`` or name in ``names`` or (name not in ``hidden_names`` and (``unrestricted``
    or name matches a ``globs`` entry))). Denials are absolute; exact names (``model:<name>`` grants)
    rank below ids and above patterns, so ``hidden_names`` yields to ``ids`` but not to ``globs``.
    """

    unrestricted: bool = False
    ids: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    denied_ids: frozenset[str] = frozenset()
    denied_globs: tuple[str, ...] = ()
    reason: str = ""
    rule: str | None = None
    names: frozenset[str] = frozenset()
    hidden_names: frozenset[str] = frozenset()
    denied_names: frozenset[str] = frozenset()
    # A further scope the resource must also pass (a scoped token's): visibility is the intersection.
    within: ScopeSpec | None = None

    def allows(self, resource_id: str | None, name: str | None) -> bool:
        """Whether one resource is visible under this scope (the same rule the SQL applies)."""
        if self.within is not None and not self.within.allows(resource_id, name):
            return False
        if resource_id is not None and resource_id in self.denied_ids:
            return False
        if name is not None and (name in self.denied_names or any(glob_matches(p, name) for p in self.denied_globs)):
            return False
        if (resource_id is not None and resource_id in self.ids) or (name is not None and name in self.names):
            return True
        if name is not None and name in self.hidden_names:
            return False
        return self.unrestricted or (name is not None and any(glob_matches(p, name) for p in self.globs))
