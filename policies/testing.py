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
        workspace: default             # the request's workspace (optional)
        expect: allow                  # allow | deny
        rule: access.grants[0]         # the rule expected to decide (optional)
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
from policies.file.fields import PermissionName, ResourceText
from policies.file.loader import load_policy_file, parse_yaml, policy_from_data
from policies.file.problems import PolicyFileError, validation_problems
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
    workspace: str | None = None
    expect: Literal["allow", "deny"]
    rule: str | None = None

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


def _subject(case: CaseSpec) -> Subject:
    if case.principal == "anonymous":
        return Subject.anonymous()
    kind, _, name = case.principal.partition(":")
    scope = parse_scope(case.token.scope, case.token.cidrs) if case.token is not None else None
    return Subject(kind, name, frozenset(case.groups), case.admin, case.read_only,  # type: ignore[arg-type]
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


def run_case(policy: CompiledPolicy, case: CaseSpec) -> CaseResult:
    """Decide one case and compare with its expectation."""
    decision = decide_all(policy, _subject(case), _checks(case), _context(case))
    wanted = case.expect == "allow"
    problems = []
    if decision.allowed != wanted:
        problems.append(f"expected {case.expect}, got {'allow' if decision.allowed else 'deny'}")
    if case.rule is not None and decision.rule != case.rule:
        problems.append(f"expected rule {case.rule}, got {decision.rule}")
    message = "; ".join(problems) + (f" ({decision.reason})" if problems else "")
    return CaseResult(case.name, not problems, decision, case.expect, case.rule, message or decision.reason)


def run_cases(policy: CompiledPolicy, cases: list[CaseSpec]) -> list[CaseResult]:
    """Decide every case; one result each, in order."""
    return [run_case(policy, case) for case in cases]


def load_case_file(path: str | Path, environ: Mapping[str, str] | None = None,
                   policy: CompiledPolicy | None = None) -> tuple[CompiledPolicy, list[CaseSpec]]:
    """Parse a case file and compile the policy it names (or use ``policy``); CaseFileError if invalid."""
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
    if policy is None:
        try:
            if spec.policy_file is not None:
                document = load_policy_file(path.parent / spec.policy_file, environ)
            else:
                document = policy_from_data(spec.policy or {}, environ)
        except PolicyFileError as exc:
            raise CaseFileError([f"policy: {p}" for p in exc.problems]) from None
        policy = compile_policy(document, grants)
    return policy, list(spec.cases)


def run_case_file(path: str | Path, environ: Mapping[str, str] | None = None,
                  policy: CompiledPolicy | None = None) -> list[CaseResult]:
    """Load a case file and run all its cases."""
    compiled, cases = load_case_file(path, environ, policy)
    return run_cases(compiled, cases)
