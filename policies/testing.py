"""Policy tests as data: YAML cases of principal x resource x action -> expected decision.

Used by the project's own tests and by ``mlgate policy test CASES.yaml``, so a policy repository can
check in CI that its file does what its authors mean. A case file looks like::

    policy_file: ../policy.yaml        # relative to this file; or `policy:` with the file inline
    api_grants:                        # optional: grants as the API would hold them
      - {id: 17, principal: user:bob, resource: experiment:5, permission: MANAGE}
    cases:
      - name: bob edits his team's experiment
        principal: user:bob            # user:<name>, service:<name> or anonymous
        groups: [team-a]               # groups the identity layer reports (optional)
        admin: false                   # identity-layer admin flag (optional)
        read_only: false               # a read-only token (optional)
        operation: runs.log_metric     # a route-table operation id, or `action: READ|EDIT|MANAGE|CREATE`
        experiment: {id: "12", name: team-a/exp}   # or `model: <name>`, `user: <name>`, `new_name: <name>`
        also: [{experiment: {id: "3", name: x}}]   # resources of the cross-resource checks (optional)
        at: 2026-12-31T18:00:00Z       # the request's time (optional; default: the time of the run)
        tags: {pii: "true"}            # the resource's tags, for conditions (optional)
        alias: champion                # the model alias the request names, for conditions (optional)
        token: {scope: ["EDIT:experiment-name:team-a/*"], cidrs: [10.0.0.0/8]}   # a scoped token (optional)
        client: 10.1.2.3               # the request's client address (optional)
        expect: allow                  # allow | deny
        rule: access.grants[0]         # the rule expected to decide (optional)
        workspace: team-a              # decide as a request in this workspace (optional; default: default)

A case naming a workspace is decided as a request in it: the principal must be a member (an
administrator, anyone in ``default``, else a holder of one of its declared roles; a non-member is
denied, rule ``workspace-membership``), and it carries the group ``role@<workspace>/<role>`` of each
declared role it holds there, whose permissions are grants citing ``workspaces.<name>.roles.<role>...``.
A workspace neither declared nor made by a template is an error of the case file, not "everything".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.compiled import CompiledPolicy
from policies.decide import compile_policy, decide_all
from policies.file.document import PolicyFile
from policies.file.fields import PermissionName, ResourceText
from policies.file.loader import load_policy_file, parse_yaml, policy_from_data
from policies.file.problems import PolicyFileError, validation_problems
from policies.file.workspaces import (
    DEFAULT_WORKSPACE,
    ROLE_GROUP_PREFIX,
    WorkspaceEntry,
    file_role_group,
    instantiate,
    role_grants,
    template_for,
)
from policies.model import Decision, Grant, Permission, RequestContext, Resource, ResourceKind, Subject
from policies.routes import Access, Requirement, create_requirement, requirement_for, resource_requirement
from policies.token_scope import parse_scope


class CaseFileError(Exception):
    """A case file is invalid; ``problems`` lists every problem with its path."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid case file:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


_STRICT = ConfigDict(extra="forbid", frozen=True)


class ExperimentRef(BaseModel):
    """An experiment a case acts on."""

    model_config = _STRICT
    id: str
    name: str


class ResourceRef(BaseModel):
    """One resource: at most one of experiment, model, user, new_name (a name being created)."""

    model_config = _STRICT
    experiment: ExperimentRef | None = None
    model: str | None = None
    user: str | None = None
    new_name: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ResourceRef:
        given = [k for k in ("experiment", "model", "user", "new_name") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one resource, not {', '.join(given)}")
        return self

    def resource(self, create_kind: ResourceKind | None = None) -> Resource | None:
        """The resource value ``decide`` takes, or None when the case names none."""
        if self.experiment is not None:
            return Resource.experiment(self.experiment.id, self.experiment.name)
        if self.model is not None:
            return Resource.registered_model(f"id-of-{self.model}", self.model)
        if self.user is not None:
            return Resource.user(self.user)
        if self.new_name is not None:
            return Resource(create_kind or ResourceKind.NONE, None, self.new_name)
        return None


class TokenSpec(BaseModel):
    """A scoped token's limits, as ``mlgate tokens create --scope ... --from-cidr ...`` takes them."""

    model_config = _STRICT
    scope: list[str] = Field(default_factory=list)
    cidrs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> TokenSpec:
        parse_scope(self.scope, self.cidrs)
        return self


class CaseSpec(ResourceRef):
    """One case."""

    name: str
    principal: str
    groups: list[str] = Field(default_factory=list)
    admin: bool = False
    read_only: bool = False
    operation: str | None = None
    action: Literal["READ", "EDIT", "MANAGE", "CREATE"] | None = None
    also: list[ResourceRef | None] = Field(default_factory=list)
    at: datetime | None = None
    tags: dict[str, str] | None = None
    alias: str | None = None
    token: TokenSpec | None = None
    client: str | None = None
    expect: Literal["allow", "deny"]
    rule: str | None = None
    workspace: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> CaseSpec:
        if (self.operation is None) == (self.action is None):
            raise ValueError("give exactly one of operation and action")
        if self.principal != "anonymous":
            kind, _, name = self.principal.partition(":")
            if kind not in ("user", "service") or not name:
                raise ValueError(f"principal {self.principal!r} is not user:<name>, service:<name> or anonymous")
        return self


class ApiGrantSpec(BaseModel):
    """A grant as the permission API would hold it."""

    model_config = _STRICT
    id: int | str
    principal: str
    resource: ResourceText
    permission: PermissionName
    effect: Literal["allow", "deny"] = "allow"
    expires_at: datetime | None = None
    break_glass: bool = False

    def grant(self) -> Grant:
        """The policy's grant for this entry."""
        expires = self.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return Grant.from_api(self.id, self.principal, self.resource, self.permission, self.effect,
                              expires_at=None if expires is None else int(expires.timestamp() * 1000),
                              break_glass=self.break_glass)


class CaseFile(BaseModel):
    """A whole case file."""

    model_config = _STRICT
    policy_file: str | None = None
    policy: dict[str, Any] | None = None
    api_grants: list[ApiGrantSpec] = Field(default_factory=list)
    cases: list[CaseSpec]


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case."""

    name: str
    passed: bool
    decision: Decision
    expected: str
    expected_rule: str | None
    message: str


@dataclass(frozen=True)
class WorkspaceCase:
    """What a case's workspace means for its principal: membership and the role groups it carries there."""

    workspace: str
    member: bool
    role_groups: frozenset[str]


def _subject(case: CaseSpec, where: WorkspaceCase | None = None) -> Subject:
    if case.principal == "anonymous":
        return Subject.anonymous()
    kind, _, name = case.principal.partition(":")
    # A group named like a role's is never taken from the identity layer (as on a server).
    groups = {g for g in case.groups if not g.startswith(ROLE_GROUP_PREFIX)}
    if where is not None:
        groups |= where.role_groups
    scope = parse_scope(case.token.scope, case.token.cidrs) if case.token is not None else None
    return Subject(kind, name, frozenset(groups), case.admin, case.read_only,  # type: ignore[arg-type]
                   token_scope=scope)


def _context(case: CaseSpec) -> RequestContext:
    at = case.at if case.at is not None else datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return RequestContext(now_ms=int(at.timestamp() * 1000), client=case.client, workspace=case.workspace)


def _create_kind(requirement: Requirement) -> ResourceKind | None:
    if requirement.access is Access.CREATE_EXPERIMENT:
        return ResourceKind.EXPERIMENT
    if requirement.access is Access.CREATE_MODEL:
        return ResourceKind.REGISTERED_MODEL
    return None


def _requirement(case: CaseSpec) -> Requirement | None:
    if case.operation is not None:
        return requirement_for(case.operation)
    kind = ResourceKind.REGISTERED_MODEL if case.model is not None else ResourceKind.EXPERIMENT
    if case.action == "CREATE":
        return create_requirement(kind)
    return resource_requirement(Permission[case.action], kind)


def _checks(case: CaseSpec) -> list[tuple[Requirement | None, Resource | None]]:
    requirement = _requirement(case)
    if requirement is None:
        return [(None, None)]
    if case.action == "CREATE":
        # `model: <name>` / `new_name:` name the model or experiment to be created.
        name = case.model if case.model is not None else case.new_name
        return [(requirement, Resource(_create_kind(requirement) or ResourceKind.NONE, None, name))]
    main = case.resource(_create_kind(requirement))
    if main is not None and (case.tags is not None or case.alias is not None):
        tags = None if case.tags is None else frozenset(case.tags.items())
        main = replace(main, tags=tags, alias=case.alias)
    checks: list[tuple[Requirement | None, Resource | None]] = [(requirement, main)]
    for extra, ref in zip(requirement.also, case.also, strict=False):
        if ref is not None:  # an omitted cross-resource reference is skipped, as for an absent field
            checks.append((extra, ref.resource(_create_kind(extra))))
    return checks


def run_case(policy: CompiledPolicy, case: CaseSpec, where: WorkspaceCase | None = None) -> CaseResult:
    """Decide one case (in its workspace, when ``where`` says what that means) and compare."""
    if where is not None and not where.member:
        decision = Decision(False, f"{case.principal} is not a member of workspace '{where.workspace}'",
                            "workspace-membership")
    else:
        decision = decide_all(policy, _subject(case, where), _checks(case), _context(case))
    wanted = case.expect == "allow"
    problems = []
    if decision.allowed != wanted:
        problems.append(f"expected {case.expect}, got {'allow' if decision.allowed else 'deny'}")
    if case.rule is not None and decision.rule != case.rule:
        problems.append(f"expected rule {case.rule}, got {decision.rule}")
    message = "; ".join(problems) + (f" ({decision.reason})" if problems else "")
    return CaseResult(case.name, not problems, decision, case.expect, case.rule, message or decision.reason)


def run_cases(policy: CompiledPolicy, cases: list[CaseSpec],
              where: list[WorkspaceCase | None] | None = None) -> list[CaseResult]:
    """Decide every case; one result each, in order."""
    where = where or [None] * len(cases)
    return [run_case(policy, case, w) for case, w in zip(cases, where, strict=True)]


def _file_groups_of(document: PolicyFile, principal: str) -> set[str]:
    return {name for name, members in document.access.groups.items() if principal in members}


def workspace_cases(document: PolicyFile, cases: list[CaseSpec]) -> tuple[list[WorkspaceCase | None], list[Grant],
                                                                           list[str]]:
    """Each case's workspace context, the grants of the roles the cases' workspaces declare, and the problems
    (a case naming a workspace the file neither declares nor makes from a template)."""
    named = {c.workspace for c in cases if c.workspace is not None}
    if document.workspaces is None and not document.workspace_templates and not named:
        return [None] * len(cases), [], []
    problems, made = [], {}
    where = {name: f"workspaces.{name}" for name in (document.workspaces or {})}
    for i, case in enumerate(cases):
        name = case.workspace
        if name is None or name == DEFAULT_WORKSPACE or name in (document.workspaces or {}) or name in made:
            continue
        template = template_for(document.workspace_templates, name)
        if template is None:
            problems.append(f"cases[{i}].workspace: workspace {name!r} is not declared in the policy's workspaces "
                            "and no workspace_templates entry makes it")
            continue
        made[name] = instantiate(template, name)
        where[name] = f"workspace_templates[{document.workspace_templates.index(template)}]"
    known = {**(document.workspaces or {}), **made}
    out: list[WorkspaceCase | None] = []
    for case in cases:
        name = case.workspace or DEFAULT_WORKSPACE
        keys = {case.principal, *(f"group:{g}" for g in case.groups),
                *(f"group:{g}" for g in _file_groups_of(document, case.principal))}
        held = frozenset(file_role_group(name, role) for role, entry in ((known.get(name) or WorkspaceEntry()).roles
                                                                          or {}).items()
                         if keys & set(entry.members))
        member = case.admin or name == DEFAULT_WORKSPACE or bool(held)
        out.append(WorkspaceCase(name, member, held))
    return out, role_grants(known, where), problems


def load_case_file(path: str | Path, environ: Mapping[str, str] | None = None,
                   policy: CompiledPolicy | None = None) -> tuple[CompiledPolicy, list[CaseSpec]]:
    """Parse a case file and compile the policy it names (or use ``policy``); CaseFileError if invalid."""
    compiled, cases, _ = load_cases(path, environ, policy)
    return compiled, cases


def load_cases(path: str | Path, environ: Mapping[str, str] | None = None, policy: CompiledPolicy | PolicyFile |
               None = None) -> tuple[CompiledPolicy, list[CaseSpec], list[WorkspaceCase | None]]:
    """Parse a case file and compile the policy it names (or ``policy``, a document or compiled), with each
    case's workspace context; CaseFileError listing every problem."""
    path = Path(path)
    try:
        data, problems = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError([f"cannot read {path}: {exc}"]) from None
    except PolicyFileError as exc:
        raise CaseFileError(exc.problems) from None
    try:
        spec = CaseFile.model_validate(data)
    except ValidationError as exc:
        raise CaseFileError(problems + validation_problems(exc)) from None
    if problems:
        raise CaseFileError(problems)
    try:
        grants = [g.grant() for g in spec.api_grants]
    except ValueError as exc:
        raise CaseFileError([f"api_grants: {exc}"]) from None
    if isinstance(policy, CompiledPolicy):
        if any(c.workspace is not None for c in spec.cases):
            raise CaseFileError(["cases name workspaces: run them against the policy file, not a compiled policy"])
        return policy, list(spec.cases), [None] * len(spec.cases)
    document = policy
    if document is None:
        try:
            if spec.policy_file is not None:
                document = load_policy_file(path.parent / spec.policy_file, environ)
            else:
                document = policy_from_data(spec.policy or {}, environ)
        except PolicyFileError as exc:
            raise CaseFileError([f"policy: {p}" for p in exc.problems]) from None
    where, role_grants_, problems = workspace_cases(document, list(spec.cases))
    if problems:
        raise CaseFileError(problems)
    return compile_policy(document, grants + role_grants_), list(spec.cases), where


def run_case_file(path: str | Path, environ: Mapping[str, str] | None = None,
                  policy: CompiledPolicy | PolicyFile | None = None) -> list[CaseResult]:
    """Load a case file and run all its cases (``policy``: the file to test instead of the one it names)."""
    compiled, cases, where = load_cases(path, environ, policy)
    return run_cases(compiled, cases, where)
