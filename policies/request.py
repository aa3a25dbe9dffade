"""The whole decision about one request, as one pure function: what to answer, and which check failed.

:func:`policies.decide.decide` answers one check (a requirement on one resource). A request needs
more: it may carry several checks (a model version needs EDIT on the model and READ on its source
run's experiment), a refused resource the caller may not even READ must answer exactly like a missing
one (404, so ids cannot be probed), and administrators bypass grants but not workspaces.
:func:`decide_request` puts those together, so the gateway only locates the resources, calls it once
and raises what it says.

Precedence (the first step that applies decides)
------------------------------------------------
1. No route-table entry: forbidden (``route-table``).
2. PUBLIC operations: allowed.
3. Anonymous callers: unauthenticated (``anonymous``); the gateway answers 401.
4. Administrators without a read-only token: a resource that exists only in another workspace is
   missing (``workspace``), for them too; everything else is allowed (``admin``) without the grants.
5. Every located check in order, by :func:`~policies.decide.decide`; the first that fails decides:
   a. a resource check on a resource that does not exist (or is in another workspace): missing;
   b. a resource check the caller may not READ either: missing (hidden == missing);
   c. anything else: forbidden, naming the failed check (read-only token, admin-only, not one's own
      account, a create rule, no sufficient grant or a deny).
6. All passed: allowed, citing the first check's rule. No checks located at all (every one optional
   and absent): forbidden, as for an unmapped operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from policies.compiled import CompiledPolicy
from policies.decide import decide
from policies.model import UNKNOWN_CONTEXT, Decision, Permission, RequestContext, Resource, ResourceKind, Subject
from policies.routes import Access, Requirement, resource_requirement

__all__ = ["Answer", "Check", "Failure", "RequestDecision", "bypasses", "decide_request", "needs_grants",
           "needs_workspace"]


class Answer(StrEnum):
    """How the gateway answers the request."""

    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # 401: sign in first
    MISSING = "missing"  # 404, exactly as for a resource that does not exist
    FORBIDDEN = "forbidden"  # 403: the caller may see the resource but not do this


class Failure(StrEnum):
    """Which check refused the request."""

    ROUTE_TABLE = "route-table"  # the operation is not in the route table (or nothing could be checked)
    ANONYMOUS = "anonymous"  # no valid credentials
    READ_ONLY_TOKEN = "read-only-token"  # noqa: S105 - a rule name: a read-only token asked for more than READ
    ADMIN_ONLY = "admin-only"  # an administrators' operation
    NOT_SELF = "self"  # a self-service operation on another account
    CREATE_RULE = "create-rule"  # access.create rules, or a name a grant promises to others
    RESOURCE_MISSING = "resource-missing"  # the resource does not exist, or only in another workspace
    UNRESOLVED = "unresolved"  # the resource's id or name could not be established
    GRANT_MISSING = "grant-missing"  # no grant (nor the default) reaches the level needed, or a deny vetoes it
    TOKEN_SCOPE = "token-scope"  # noqa: S105 - a rule name: outside a scoped token's resources, network or workspace
    GRANT_EXPIRED = "expired-grant"  # only a grant that has expired would have allowed it
    SCIM_TOKEN_ONLY = "scim-token-only"  # noqa: S105 - a rule name. A SCIM operation: only the provisioning token opens it


@dataclass(frozen=True)
class Check:
    """One check of a request with the resource the request names for it.

    ``resource`` is None when the check concerns no resource; a resource that does not exist is one
    with no id. ``elsewhere``: it exists, but in another workspace than the request's. ``position`` is
    the check's place in ``Requirement.checks()`` (optional checks may be absent).
    """

    requirement: Requirement
    resource: Resource | None = None
    position: int = 0
    elsewhere: bool = False


@dataclass(frozen=True)
class RequestDecision:
    """The answer to one request, the decision behind it (reason and rule, for the audit) and what failed."""

    answer: Answer
    decision: Decision
    failure: Failure | None = None
    check: Check | None = None  # the check that failed (None: the request as a whole)

    @property
    def allowed(self) -> bool:
        """Whether the request may proceed to its handler."""
        return self.answer is Answer.ALLOW


def needs_workspace(subject: Subject, requirement: Requirement | None) -> bool:
    """Whether the decision depends on the request's workspace and resources (steps 1-3 settle the rest)."""
    return requirement is not None and requirement.access is not Access.PUBLIC and subject.kind != "anonymous"


def bypasses(subject: Subject, admin: bool) -> bool:
    """Whether an administrator skips the grants: not with a read-only or a scoped token."""
    return admin and not subject.read_only_token and subject.token_scope is None


def needs_grants(subject: Subject, requirement: Requirement | None, *, admin: bool) -> bool:
    """Whether :func:`decide_request` consults the compiled grants (not for steps 1-4)."""
    return needs_workspace(subject, requirement) and not bypasses(subject, admin)


def decide_request(policy: CompiledPolicy | None, subject: Subject, requirement: Requirement | None,
                   checks: Iterable[Check], *, admin: bool,
                   context: RequestContext = UNKNOWN_CONTEXT) -> RequestDecision:
    """Decide a whole request (see the module docstring for the precedence).

    ``admin``: whether the subject is an administrator (the identity flag or ``access.admins``, known
    without the grants). ``policy`` may be None only when the administrator bypass applies (admin
    without a read-only token): then no grant is consulted, so a burst of creations, each adding an
    owner grant, need not recompile the grants once per request.
    """
    if requirement is None:
        return RequestDecision(Answer.FORBIDDEN, decide(policy, subject, None), Failure.ROUTE_TABLE)
    if requirement.access is Access.PUBLIC:
        return RequestDecision(Answer.ALLOW, decide(policy, subject, requirement))
    if requirement.access is Access.SCIM:
        # The gateway checks the provisioning token before deciding; no principal, administrators
        # included, reaches SCIM through a decision.
        return RequestDecision(Answer.FORBIDDEN, decide(policy, subject, requirement), Failure.SCIM_TOKEN_ONLY)
    if subject.kind == "anonymous":
        return RequestDecision(Answer.UNAUTHENTICATED, decide(policy, subject, requirement), Failure.ANONYMOUS)
    if bypasses(subject, admin):
        for check in checks:
            if check.elsewhere:
                return RequestDecision(Answer.MISSING, Decision(
                    False, f"{check.resource.describe() if check.resource else 'the resource'} is not in the "
                           "request's workspace", "workspace"), Failure.RESOURCE_MISSING, check)
        return RequestDecision(Answer.ALLOW, Decision(
            True, f"{subject.kind} {subject.name} is an administrator; administrators bypass access checks", "admin"))
    if policy is None:
        raise ValueError("deciding for anyone but an administrator needs the compiled policy")
    first: Decision | None = None
    for check in checks:
        decision = decide(policy, subject, check.requirement, check.resource, context)
        if not decision.allowed:
            return _refusal(policy, subject, check, decision, context)
        if first is None or (decision.break_glass and not first.break_glass):
            first = decision  # a break-glass allow among them is the one returned, so its use is audited
    if first is None:
        return RequestDecision(Answer.FORBIDDEN, decide(policy, subject, None), Failure.ROUTE_TABLE)
    return RequestDecision(Answer.ALLOW, first)


def _refusal(policy: CompiledPolicy, subject: Subject, check: Check, decision: Decision,
             context: RequestContext) -> RequestDecision:
    """A failed check: missing when the caller may not know the resource exists, else forbidden."""
    resource = check.resource
    failure = _failure(check.requirement, decision)
    if check.requirement.access is Access.RESOURCE and resource is not None:
        if resource.id is None and resource.kind is not ResourceKind.NONE:
            return RequestDecision(Answer.MISSING, decision, Failure.RESOURCE_MISSING, check)
        can_read = decide(policy, subject, resource_requirement(Permission.READ, resource.kind), resource, context)
        if not can_read.allowed:
            return RequestDecision(Answer.MISSING, decision, failure, check)
    return RequestDecision(Answer.FORBIDDEN, decision, failure, check)


_FAILURE_BY_RULE = {
    "route-table": Failure.ROUTE_TABLE,
    "anonymous": Failure.ANONYMOUS,
    "read-only-token": Failure.READ_ONLY_TOKEN,
    "admin-only": Failure.ADMIN_ONLY,
    "self": Failure.NOT_SELF,
    "unresolved": Failure.UNRESOLVED,
    "token-scope": Failure.TOKEN_SCOPE,
    "token-scope:network": Failure.TOKEN_SCOPE,
    "token-scope:workspace": Failure.TOKEN_SCOPE,
    "expired-grant": Failure.GRANT_EXPIRED,
}


def _failure(requirement: Requirement, decision: Decision) -> Failure:
    found = _FAILURE_BY_RULE.get(decision.rule or "")
    if found is not None:
        return found
    if requirement.access in (Access.CREATE_EXPERIMENT, Access.CREATE_MODEL):
        return Failure.CREATE_RULE
    return Failure.GRANT_MISSING
