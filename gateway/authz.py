"""Authorization: every routed request is decided by ``policies.request.decide_request`` before its handler runs.

The step runs as a router-level dependency, after routing (so the operation id is known) and after
authentication (the Principal is in the request state), in one pass:

    operation id -> route-table requirement -> workspace -> locate resources (run -> experiment ...)
    -> decide the whole request -> allow, or raise what the decision answers

Listing operations also get a visibility scope, which tracking applies inside its SQL queries.
A resource the caller may not READ answers exactly like a missing one (404), so ids cannot be probed;
a visible resource the caller may not change answers 403. Every denial is audited with its rule.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Engine
from starlette.requests import Request

from auth.audit import REQUEST_WORKSPACE, Auditor
from auth.errors import Unauthenticated
from auth.grants import current_generation, policy_grants
from auth.principal import Principal
from auth.roles import ROLE_GROUP_PREFIX
from auth.scim.protocol import ScimError
from auth.scim.token import ScimToken
from gateway.authn import AUTHENTICATION_ERROR, NOT_AUTHENTICATED
from gateway.workspaces import WorkspaceDirectory, named_workspace, workspace_missing
from policies.compiled import CompiledPolicy
from policies.decide import compile_policy, visible
from policies.file import PolicyFile
from policies.locate import LocatorError, locate
from policies.model import Decision, RequestContext, Resource, ResourceKind, Subject
from policies.request import Answer, Check, RequestDecision, bypasses, decide_request, needs_grants, needs_workspace
from policies.routes import Access, Lookup, Requirement, Source, requirement_for
from tracking.api.body import request_args
from tracking.artifacts.paths import parse_artifact_path
from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import (
    DEFAULT_WORKSPACE,
    NOTHING,
    REQUEST_STATE_KEY,
    UNRESTRICTED,
    WORKSPACE_STATE_KEY,
    ResourceScope,
    VisibilityScope,
)
from tracking.store.owners import OwnedBy, Owner, artifact_path_in_place, owner_of, tags_of
from tracking.store.registry_source import parse_source
from tracking.store.registry_validation import PROMPT_SOURCE_PLACEHOLDERS

# Grant changes made by another process are picked up within this many seconds (one PK read); with
# Redis, a pushed "grants changed" message makes every process read the generation on its next request.
REFRESH_SECONDS = 1.0
# An experiment's name (which name patterns match) is re-read at most this often.
NAME_CACHE_SECONDS = 1.0
_SKIP = object()  # a lookup that needs no check (an optional field absent, a remote model source)
# A resource that exists in another workspace: missing for everyone (see Authorizer._locate).
ELSEWHERE = object()


class Denied(MlflowError):
    """An authorization refusal; carries the decision for the audit record."""

    def __init__(self, message: str, error_code: str, decision: Decision | None):
        super().__init__(message, error_code)
        self.decision = decision


def subject_of(principal: Principal | None) -> Subject:
    """The policy's view of the authenticated principal."""
    if principal is None:
        return Subject.anonymous()
    # Role groups (role@<id>) are given per workspace by the authorizer, never taken from an identity.
    groups = frozenset(g for g in principal.groups if not g.startswith(ROLE_GROUP_PREFIX))
    return Subject(kind=principal.kind, name=principal.name, groups=groups,
                   is_admin=principal.is_admin, read_only_token=principal.read_only,
                   token_scope=principal.token_scope)


def request_context(request: Request, workspace: str | None) -> RequestContext:
    """The decision's inputs besides subject and resource: this moment, the resolved client, the workspace."""
    client = getattr(request.state, "client_ip", None) or (request.client.host if request.client else None)
    return RequestContext(now_ms=int(time.time() * 1000), client=client, workspace=workspace)


def to_resource_scope(spec) -> ResourceScope:
    """Tracking's SQL-applicable scope from the policy's :class:`~policies.model.ScopeSpec`."""
    return ResourceScope(unrestricted=spec.unrestricted, ids=spec.ids, name_patterns=spec.globs,
                         denied_ids=spec.denied_ids, denied_name_patterns=spec.denied_globs, names=spec.names,
                         hidden_names=spec.hidden_names, denied_names=spec.denied_names,
                         within=None if spec.within is None else to_resource_scope(spec.within))


class PolicyHolder:
    """This process's compiled policy: the file plus stored grants, recompiled when grants change."""

    def __init__(self, policy_file: PolicyFile, engine: Engine, *, refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.policy_file = policy_file
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._checked_at = float("-inf")
        self._compiled: CompiledPolicy | None = None
        # subject -> (its scope, until when it holds: the next grant expiry, epoch ms; None: no expiry)
        self._scopes: OrderedDict[Subject, tuple[VisibilityScope, int | None]] = OrderedDict()
        self._file_admins = frozenset(policy_file.access.admins)
        # Pushed invalidations (auth.credential_cache.Invalidation, with Redis): how many arrived, and
        # where this process's own grant changes are announced.
        self._pushes = 0
        self._invalidation = None
        self._attach_lock = threading.Lock()
        # Called when another generation is compiled (a grant changed or a resource was renamed anywhere).
        self._on_new_generation: list[Callable[[], None]] = []

    def on_new_generation(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this process compiles another generation (e.g. to forget cached names)."""
        self._on_new_generation.append(callback)

    def attach(self, invalidation) -> None:
        """Announce this process's grant changes on ``invalidation`` and follow the other processes' (once)."""
        with self._attach_lock:
            if self._invalidation is not None:
                return
            self._invalidation = invalidation
        invalidation.on_grants_changed(self._pushed)

    def _pushed(self) -> None:
        # Another process committed a grant change: read the generation on the next request. The counter
        # stops a check that read the generation before the change from marking the policy fresh.
        self._pushes += 1
        self._checked_at = float("-inf")

    def current(self, *, recheck: bool = False) -> CompiledPolicy:
        """The compiled policy, re-checking the grants' generation at most every ``refresh_seconds``.

        ``recheck`` reads the generation now: the authorizer does so before refusing and before a
        search, so a grant made by another process (an experiment's creator getting MANAGE, behind a
        load balancer or with several workers) counts at once instead of after the interval.
        """
        now = self.clock()
        compiled = self._compiled
        if compiled is not None and not recheck and now - self._checked_at < self.refresh_seconds:
            return compiled
        pushes = self._pushes  # before the read: a push arriving after it leaves the policy to re-check
        # The generation is one primary-key read; done outside the lock so concurrent checks do not queue.
        with self.engine.connect() as conn:
            generation = current_generation(conn)
        if compiled is not None and generation == self._generation:
            self._checked(now, pushes)
            return compiled
        with self._lock:
            if self._compiled is None or self._generation != generation:
                with self.engine.connect() as conn:
                    # Generation before grants: a change in between is seen again on the next check.
                    fresh_generation = current_generation(conn)
                    self._compiled = compile_policy(self.policy_file, policy_grants(conn))
                self._generation = fresh_generation
                self._scopes.clear()
                for forget in self._on_new_generation:
                    forget()
            self._checked(now, pushes)
            return self._compiled

    def _checked(self, now: float, pushes: int) -> None:
        if self._pushes == pushes:
            self._checked_at = now

    def is_admin(self, subject: Subject) -> bool:
        """:meth:`CompiledPolicy.is_admin` without compiling: the admins come from the file, not from grants."""
        return subject.kind != "anonymous" and (subject.is_admin or subject.key in self._file_admins)

    def invalidate(self) -> None:
        """Recompile on the next request (this process changed grants, and has committed the change).

        With Redis the other processes are told as well, so they read the generation on their next request.
        """
        with self._lock:
            self._checked_at = float("-inf")
            self._generation = None
        if self._invalidation is not None:
            self._invalidation.publish_grants()

    def visibility(self, subject: Subject, context: RequestContext) -> VisibilityScope:
        """What ``subject`` may see, memoised per subject until the policy changes or one of its grants expires.

        A scoped token's visibility depends on where the request comes from: it is computed every time.
        """
        policy = self.current()
        now = context.now_ms if context.now_ms is not None else 0
        cacheable = subject.token_scope is None
        if cacheable:
            with self._lock:
                cached = self._scopes.get(subject)
                if cached is not None and (cached[1] is None or now < cached[1]):
                    self._scopes.move_to_end(subject)
                    return cached[0]
        scope = VisibilityScope(
            experiments=to_resource_scope(visible(policy, subject, ResourceKind.EXPERIMENT, context)),
            registered_models=to_resource_scope(visible(policy, subject, ResourceKind.REGISTERED_MODEL, context)),
        )
        if cacheable:
            with self._lock:
                self._scopes[subject] = (scope, policy.next_expiry(now))
                while len(self._scopes) > 10_000:
                    self._scopes.popitem(last=False)
        return scope


class ResourceResolver:
    """Turns a locator's value into a Resource with one indexed read (tracking's ``owner_of``); None when missing."""

    def __init__(self, engine: Engine, *, name_seconds: float = NAME_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        # A run or logged model never moves to another experiment and its server-made id is never reused:
        # its owner can be cached. Trace ids are chosen by clients and reused after a delete (possibly in
        # another experiment), so a trace's owner is read every time.
        self._owner_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        # An experiment's name can change (patterns match names), so it is kept only briefly: a rename
        # here is forgotten at once (renamed()); one by another process bumps the policy generation, and
        # the holder's next check (pushed with Redis, else within its refresh interval) forgets every name
        # (forget_names()). name_seconds bounds what a rename that bumps nothing (none in mlgate) could keep.
        # Its workspace never changes; it is kept with the name.
        self._names: dict[int, tuple[str, str, float]] = {}
        self.name_seconds = name_seconds
        self.clock = clock
        self._lock = threading.Lock()

    def renamed(self, kind: str, resource_id: str) -> None:
        """A rename committed here: forget the cached name."""
        if kind == "experiment" and resource_id.isdigit():
            self._names.pop(int(resource_id), None)

    def forget_names(self) -> None:
        """Forget every cached name (a rename may have committed on another process)."""
        self._names = {}

    def _remember_name(self, owner: Owner, now: float) -> None:
        if len(self._names) >= 100_000:
            self._names.clear()
        self._names[int(owner.id)] = (owner.name, owner.workspace, now)

    def _cached_owner(self, kind: OwnedBy, conn, key: str) -> str | None:
        """The experiment id owning a run or logged model: cached for good, read once (with its name)."""
        with self._lock:
            found = self._owner_cache.get((kind, key))
        if found is not None:
            return found
        owner = owner_of(conn, kind, key)
        if owner is None:
            return None
        self._remember_name(owner, self.clock())
        with self._lock:
            self._owner_cache[(kind, key)] = owner.id
            while len(self._owner_cache) > 100_000:
                self._owner_cache.popitem(last=False)
        return owner.id

    def _experiment(self, conn, experiment_id: str, workspace: str | None) -> Resource | object | None:
        # An experiment of another workspace is missing: hidden == missing, for administrators too.
        if not (experiment_id.isascii() and experiment_id.isdigit()) or len(experiment_id) > 18:
            return None
        key = int(experiment_id)
        now = self.clock()
        cached = self._names.get(key)
        if cached is not None and 0 <= now - cached[2] < self.name_seconds:
            return Resource.experiment(experiment_id, cached[0]) if workspace in (None, cached[1]) else ELSEWHERE
        owner = owner_of(conn, OwnedBy.EXPERIMENT_ID, experiment_id)
        if owner is None:
            self._names.pop(key, None)
            return None
        self._remember_name(owner, now)
        return Resource.experiment(experiment_id, owner.name) if workspace in (None, owner.workspace) else ELSEWHERE

    def resolve(self, conn, lookup: Lookup, value: str, kind: ResourceKind | None,
                workspace: str | None) -> Resource | object | None:
        """The resource ``value`` names under ``lookup`` in ``workspace`` (None when missing, ELSEWHERE when
        in another workspace, _SKIP when not checkable). ``workspace`` None: any workspace (server-wide
        administrator tools, such as ``perms explain``, name resources of every workspace)."""
        if lookup is Lookup.EXPERIMENT_ID:
            return self._experiment(conn, value, workspace)
        if lookup is Lookup.RUN:
            exp = self._cached_owner(OwnedBy.RUN, conn, value)
            return None if exp is None else self._experiment(conn, exp, workspace)
        if lookup is Lookup.LOGGED_MODEL:
            exp = self._cached_owner(OwnedBy.LOGGED_MODEL, conn, value)
            return None if exp is None else self._experiment(conn, exp, workspace)
        if lookup is Lookup.ARTIFACT_PATH:
            # The same parser the artifact handlers use, so the check and the write agree on the owner.
            located = parse_artifact_path(value, allow_trailing_slash=True)
            found = self._experiment(conn, located.owner.experiment_id, workspace)
            if isinstance(found, Resource) and not artifact_path_in_place(conn, located):
                return ELSEWHERE  # refused for everyone, administrators included: one place per experiment
            return found
        if lookup in (Lookup.EXPERIMENT_NAME, Lookup.TRACE, Lookup.MODEL_NAME):
            # Read every time: a trace id may be reused elsewhere, names move between resources. Experiment
            # and registered model names are unique per workspace: the request's workspace says which one a
            # name means, and a name only another workspace holds is missing, not elsewhere (so it can be
            # created here, and probing it tells nothing). A tool deciding in any workspace (None) means
            # 'default' by a name, and any experiment by its id.
            owner = owner_of(conn, _OWNED_BY[lookup], value, workspace=workspace)
            if owner is None:
                return None
            if workspace not in (None, owner.workspace):
                return ELSEWHERE
            if owner.kind == "registered_model":
                return Resource.registered_model(owner.id, owner.name, is_prompt=owner.is_prompt)
            return Resource.experiment(owner.id, owner.name)
        if lookup is Lookup.SOURCE_URI:
            return self._source(conn, value, workspace)
        if lookup is Lookup.USERNAME:
            return Resource.user(value)
        if lookup is Lookup.NEW_NAME:
            return Resource(kind or ResourceKind.NONE, None, value)
        raise invalid_parameter(f"unsupported lookup {lookup}")  # pragma: no cover - table is checked by tests

    def _source(self, conn, source: str, workspace: str | None) -> Resource | object | None:
        if source in PROMPT_SOURCE_PLACEHOLDERS:
            # MLflow's placeholder for a prompt version: it names nothing to read. The handler accepts it only
            # for a prompt's version (which copies no artifacts) and refuses it (400) for any other model.
            return _SKIP
        parsed = parse_source(source)  # 400 for local paths, file: URIs and traversal, as the handler
        if parsed.kind == "runs" and parsed.run_id:
            return self.resolve(conn, Lookup.RUN, parsed.run_id, None, workspace)
        if parsed.kind == "models_id" and parsed.model_id:
            return self.resolve(conn, Lookup.LOGGED_MODEL, parsed.model_id, None, workspace)
        if parsed.kind == "models_name" and parsed.model_name:
            return self.resolve(conn, Lookup.MODEL_NAME, parsed.model_name, None, workspace)
        if parsed.kind == "proxied" and parsed.parts:
            return self.resolve(conn, Lookup.ARTIFACT_PATH, "/".join(parsed.parts), None, workspace)
        return _SKIP  # a remote URI the server never reads


_OWNED_BY = {Lookup.EXPERIMENT_NAME: OwnedBy.EXPERIMENT_NAME, Lookup.TRACE: OwnedBy.TRACE,
             Lookup.MODEL_NAME: OwnedBy.MODEL_NAME}


def resource_tags(conn, resource: Resource) -> frozenset[tuple[str, str]] | None:
    """An experiment's or registered model's tags (None for other kinds: conditions then hold, fail closed)."""
    if resource.kind is ResourceKind.EXPERIMENT and resource.id is not None:
        return tags_of(conn, "experiment", resource.id)
    if resource.kind is ResourceKind.REGISTERED_MODEL and resource.id is not None:
        return tags_of(conn, "registered_model", resource.id)
    return None


class DecisionMemo:
    """Decisions of one compiled policy by (subject, operation, resources): ``decide`` is pure, so a repeat
    of the same request by the same principal is answered without re-evaluating the grants. A new
    compiled policy (grants or file changed) starts an empty memo."""

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = max_entries
        self._policy: CompiledPolicy | None = None
        self._entries: dict[tuple, tuple[Decision, int | None]] = {}

    def decide(self, policy: CompiledPolicy, key: tuple, compute: Callable[[], Decision], now_ms: int) -> Decision:
        """The memoised decision for ``key`` under ``policy`` at ``now_ms``, computing it on a miss.

        An entry holds until the policy's next grant expiry after it was computed, so an expiring grant stops
        counting at its second, not when the memo happens to be cleared.
        """
        entries = self._entries
        if policy is not self._policy:
            entries = self._entries = {}
            self._policy = policy
        found = entries.get(key)
        if found is not None and (found[1] is None or now_ms < found[1]):
            return found[0]
        decision = compute()
        if len(entries) >= self.max_entries:
            entries.clear()
        entries[key] = (decision, policy.next_expiry(now_ms))
        return decision


class _LazyConnection:
    """A connection checked out of the pool on first use: lookups answered from caches need none."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._conn = None

    def __enter__(self) -> _LazyConnection:
        return self

    def __exit__(self, *exc) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def execute(self, *args, **kwargs):
        """``Connection.execute`` on the (now checked-out) connection."""
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn.execute(*args, **kwargs)


@dataclass(frozen=True)
class Authorized:
    """What the authorizer established about one request; handlers receive it as a typed dependency.

    ``subject`` carries the caller's roles in ``workspace`` (None for public operations, which name
    none). ``visibility`` is what a listing handler may show (nothing unless the operation lists).
    """

    principal: Principal | None
    subject: Subject
    decision: RequestDecision
    visibility: VisibilityScope = NOTHING
    workspace: str | None = None
    operation_id: str | None = None


# Where the authorizer leaves its value for the dependency provider (gateway.context).
AUTHORIZED_STATE_KEY = "authorized"


class Authorizer:
    """The FastAPI dependency that authorizes every routed request (see the module docstring).

    One pass: locate the request's resources, decide the whole request (``policies.request``), then
    allow or raise what the decision says. Returns the request's :class:`Authorized` value.
    """

    def __init__(self, holder: PolicyHolder, resolver: ResourceResolver, auditor: Auditor | None,
                 workspaces: WorkspaceDirectory | None = None, *, scim_token: ScimToken | None = None):
        self.holder = holder
        # The SCIM provisioning token (auth.scim.token); None: SCIM is off and its operations are refused.
        self.scim_token = scim_token
        self.resolver = resolver
        self.auditor = auditor
        self.workspaces = workspaces or WorkspaceDirectory(holder.engine, enabled=False)
        self._decisions = DecisionMemo()

    async def __call__(self, request: Request) -> Authorized:
        operation_id = getattr(request.scope.get("route"), "operation_id", None)
        requirement = requirement_for(operation_id) if operation_id else None
        principal: Principal | None = getattr(request.state, "principal", None)
        subject = subject_of(principal)
        # The audit records of this request carry the workspace it names until membership confirms it (a refused
        # header is recorded as asked for: that is the evidence of a probe).
        REQUEST_WORKSPACE.set(_requested_workspace(request))
        if requirement is not None and requirement.access is Access.SCIM:
            # The provisioning token alone opens SCIM; no principal (administrators included) qualifies.
            self._check_scim_token(request, operation_id)
            return Authorized(principal, subject, RequestDecision(Answer.ALLOW, Decision(
                True, "SCIM provisioning token", "scim-token")), NOTHING, None, operation_id)
        workspace: str | None = None
        checks: list[Check] = []
        if needs_workspace(subject, requirement):
            # A signed-in caller on a classified operation: membership first (non-members: 404), then the
            # resources the checks name, in that workspace.
            workspace, subject = self._workspace(request, subject)
        admin = self.holder.is_admin(subject)
        context = request_context(request, workspace)
        if workspace is not None:
            checks = await self._locate(request, requirement, workspace,
                                        stop_at_elsewhere=bypasses(subject, admin))
        result = self._decide(subject, operation_id, requirement, checks, admin, context)
        if not result.allowed:
            self._refuse(request, operation_id, subject, requirement, result)
        if result.decision.break_glass:
            self._audit_break_glass(request, operation_id, subject, result.decision)
        authorized = Authorized(principal, subject, result,
                                self._visibility(requirement, subject, workspace, admin, context),
                                workspace, operation_id)
        if requirement.scoped:
            setattr(request.state, REQUEST_STATE_KEY, authorized.visibility)
        setattr(request.state, AUTHORIZED_STATE_KEY, authorized)
        return authorized

    def _decide(self, subject: Subject, operation_id: str | None, requirement: Requirement | None,
                checks: list[Check], admin: bool, context: RequestContext) -> RequestDecision:
        """The request's decision, memoised per compiled policy; a refusal is re-checked against fresh grants."""
        if not needs_grants(subject, requirement, admin=admin):
            return decide_request(None, subject, requirement, checks, admin=admin, context=context)
        # A search shows what the grants allow now: a grant just made by another process must count.
        policy = self.holder.current(recheck=requirement.access is Access.SEARCH and not admin)
        if policy.needs_tags:
            checks = self._with_tags(checks)
        # Keyed by each check's position too: two requests naming the same resource through different
        # (optional) checks need different permissions and must not share a decision. A scoped token's
        # decision depends on the client and workspace too: they are part of its key.
        where = (context.client, context.workspace) if subject.token_scope is not None else None
        key = (subject, operation_id, tuple((c.position, c.resource, c.elsewhere) for c in checks), where)
        result = self._decisions.decide(
            policy, key, lambda: decide_request(policy, subject, requirement, checks, admin=admin, context=context),
            context.now_ms)
        if not result.allowed:
            # Before refusing, make sure no other process granted access since the last check: a newer
            # policy is another question, not the same one asked twice.
            fresher = self.holder.current(recheck=True)
            if fresher is not policy:
                result = decide_request(fresher, subject, requirement, checks, admin=admin, context=context)
        return result

    def _check_scim_token(self, request: Request, operation_id: str) -> None:
        """The SCIM provisioning token, or a SCIM error (RFC 7644 section 3.12); no principal counts here."""
        if self.scim_token is None:
            self.audit_denial(request, operation_id, subject_of(None), None, "SCIM provisioning is not enabled")
            raise ScimError(404, "SCIM provisioning is not enabled on this server (auth.scim.token).")
        if not self.scim_token.matches(request.headers.get("authorization")):
            self.audit_denial(request, operation_id, subject_of(None), None,
                              "missing or wrong SCIM provisioning token")
            raise ScimError(401, "A valid SCIM provisioning token is required.",
                            headers={"WWW-Authenticate": 'Bearer realm="mlgate-scim"'})

    def _refuse(self, request: Request, operation_id: str | None, subject: Subject, requirement: Requirement | None,
                result: RequestDecision):
        """Raise what a refusal answers: 401, 404 as for a missing resource, or 403 with the reason."""
        if result.answer is Answer.UNAUTHENTICATED:
            # Presented credentials that failed say why; none at all is the same refusal (401).
            raise getattr(request.state, AUTHENTICATION_ERROR, None) or Unauthenticated(NOT_AUTHENTICATED)
        if result.answer is Answer.MISSING:
            self._deny(request, operation_id, subject, result.decision, _missing_message(result.check.requirement),
                       "RESOURCE_DOES_NOT_EXIST")
        message = ("This operation is not permitted." if requirement is None
                   else f"Permission denied: {_short_reason(result.decision)}")
        self._deny(request, operation_id, subject, result.decision, message, "PERMISSION_DENIED")

    def _visibility(self, requirement: Requirement | None, subject: Subject, workspace: str | None,
                    admin: bool, context: RequestContext) -> VisibilityScope:
        """A listing handler's visibility scope in ``workspace``; tracking shows nothing without one."""
        if requirement is None or not requirement.scoped or workspace is None:
            return NOTHING
        scope = UNRESTRICTED if bypasses(subject, admin) else self.holder.visibility(subject, context)
        return VisibilityScope(experiments=scope.experiments.in_workspace(workspace),
                               registered_models=scope.registered_models.in_workspace(workspace))

    def _workspace(self, request: Request, subject: Subject) -> tuple[str, Subject]:
        """The request's workspace (validated; membership decides) and the subject with its roles there."""
        directory = self.workspaces
        workspace = directory.requested(named_workspace(request))
        admin = self.holder.is_admin(subject)
        if workspace == DEFAULT_WORKSPACE and bypasses(subject, admin):
            # Administrators bypass decisions and are members of 'default': no compiled policy needed.
            setattr(request.state, WORKSPACE_STATE_KEY, workspace)
            REQUEST_WORKSPACE.set(workspace)
            return workspace, subject
        view = directory.view(self.holder.current())
        if not view.is_member(subject, workspace, admin=admin):
            # A workspace just created, or a role just given, by another process counts at once.
            view = directory.view(self.holder.current(recheck=True))
            if not view.is_member(subject, workspace, admin=admin):
                self.audit_denial(request, getattr(request.scope.get("route"), "operation_id", None), subject,
                                  None, f"not a member of workspace {workspace!r} (or it does not exist)")
                raise workspace_missing(workspace)
        setattr(request.state, WORKSPACE_STATE_KEY, workspace)
        REQUEST_WORKSPACE.set(workspace)
        subject = view.subject_in(subject, workspace)
        request.state.workspace_subject = subject
        return workspace, subject

    async def _locate(self, request: Request, requirement: Requirement, workspace: str, *,
                      stop_at_elsewhere: bool = False) -> list[Check]:
        """Every check's resource in ``workspace``: one that does not exist is a Resource without id, one of
        another workspace is marked ``elsewhere``. ``stop_at_elsewhere`` (administrators, who bypass the
        grants but not workspaces): the first resource of another workspace ends the search, its 404 is due."""
        args = None
        headers = None
        located: list[Check] = []
        with _LazyConnection(self.resolver.engine) as conn:
            for position, check in enumerate(requirement.checks()):
                locator = check.locator
                if locator is None:
                    located.append(Check(check, None, position))
                    continue
                if args is None and locator.source is Source.ARGS:
                    # Only fields in the arguments need the body; an artifact upload stays a stream.
                    args = (await request_args(request)).data
                if headers is None and locator.source is Source.HEADER:
                    headers = {k.lower(): v for k, v in request.headers.items()}
                try:
                    values = locate(locator, args or {}, request.path_params, headers or {})
                except LocatorError as exc:
                    raise invalid_parameter(str(exc)) from None
                if values is None:
                    if locator.required:
                        raise invalid_parameter(
                            f"Missing value for required parameter '{locator.fields[0]}'. "
                            "See the API docs for more information about request parameters.")
                    continue
                for value in values:
                    resource = self.resolver.resolve(conn, locator.lookup, value, check.resource_kind, workspace)
                    if resource is _SKIP:
                        continue
                    elsewhere = resource is ELSEWHERE
                    if resource is None or elsewhere:
                        # Missing (or hidden in another workspace): a placeholder with no id, decided like a
                        # resource the caller cannot see.
                        resource = Resource(check.resource_kind or ResourceKind.EXPERIMENT, None, None)
                    if check.alias_field is not None:
                        # Conditions on aliases see the alias the request names (access.conditions).
                        alias = (args or {}).get(check.alias_field)
                        resource = replace(resource, alias=alias if isinstance(alias, str) else None)
                    located.append(Check(check, resource, position, elsewhere))
                    if elsewhere and stop_at_elsewhere:
                        return located
        return located

    def _audit_break_glass(self, request: Request, operation_id: str | None, subject: Subject,
                           decision: Decision) -> None:
        """Every use of a break-glass grant is its own audit event (action ``break_glass.use``)."""
        if self.auditor is not None:
            client = getattr(request.state, "client_ip", None) or (request.client.host if request.client else None)
            self.auditor.record("break_glass.use", "success",
                                actor=subject.name if subject.kind != "anonymous" else None,
                                target=f"{operation_id or request.url.path}", client=client,
                                reason=f"{decision.reason} [rule: {decision.rule}]")

    def _with_tags(self, checks: list[Check]) -> list[Check]:
        """The checks' resources with their tags (one read per resource), for conditions on tags."""
        out = []
        with self.resolver.engine.connect() as conn:
            for check in checks:
                resource = check.resource
                if resource is not None and resource.id is not None:
                    resource = replace(resource, tags=resource_tags(conn, resource))
                out.append(replace(check, resource=resource))
        return out

    def _deny(self, request: Request, operation_id: str | None, subject: Subject, decision: Decision | None,
              message: str, code: str):
        self.audit_denial(request, operation_id, subject, decision, message)
        raise Denied(message, code, decision)

    def audit_denial(self, request: Request, operation_id: str | None, subject: Subject,
                     decision: Decision | None, message: str = "") -> None:
        """Append the denial, with its reason and rule, to the audit log.

        The actor is the bare account name, as sign-ins record it (names are unique across users and service
        accounts), so one ``--actor`` filter finds both."""
        if self.auditor is not None:
            client = getattr(request.state, "client_ip", None) or (request.client.host if request.client else None)
            reason = decision.reason if decision else message
            rule = decision.rule if decision else None
            workspace = getattr(request.state, WORKSPACE_STATE_KEY, None)
            if workspace is not None and workspace != DEFAULT_WORKSPACE:
                reason = f"{reason} [workspace: {workspace}]"
            self.auditor.record("authorize", "denied", actor=subject.name if subject.kind != "anonymous" else None,
                                target=f"{operation_id or request.url.path}",
                                client=client, reason=f"{reason} [rule: {rule}]")


def _requested_workspace(request: Request) -> str:
    """The workspace a request names, as sent (bounded), for its audit records; ``default`` when none."""
    named = (named_workspace(request) or "").strip()
    return named[:63] if named else DEFAULT_WORKSPACE


_MISSING_BY_KIND = {
    ResourceKind.EXPERIMENT: "The requested resource does not exist.",
    ResourceKind.REGISTERED_MODEL: "The requested registered model does not exist.",
}


def _missing_message(requirement: Requirement) -> str:
    return _MISSING_BY_KIND.get(requirement.resource_kind, "The requested resource does not exist.")


def _short_reason(decision: Decision) -> str:
    # The reason names the caller and the rule, never another principal's grants or a secret.
    return decision.reason
