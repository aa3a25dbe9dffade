"""Authorization: every routed request is decided by ``policies.decide`` before its handler runs.

The step runs as a router-level dependency, after routing (so the operation id is known) and after
authentication (the Principal is in the request state):

    operation id -> route-table requirement -> resource lookup (run -> experiment ...) -> decide

Search operations get a visibility scope instead, which tracking applies inside its SQL queries.
A resource the caller may not READ answers exactly like a missing one (404), so ids cannot be probed;
a visible resource the caller may not change answers 403. Every denial is audited with its rule.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from starlette.requests import Request

from auth.audit import Auditor
from auth.errors import Unauthenticated
from auth.grants import current_generation, policy_grants
from auth.principal import Principal
from auth.roles import ROLE_GROUP_PREFIX
from gateway.authn import AUTHENTICATION_ERROR, NOT_AUTHENTICATED
from gateway.workspaces import WORKSPACE_HEADER, WorkspaceDirectory, workspace_missing
from policies.compiled import CompiledPolicy
from policies.decide import compile_policy, decide, decide_all, visible
from policies.file import PolicyFile
from policies.locate import LocatorError, locate
from policies.model import Decision, Permission, Resource, ResourceKind, Subject
from policies.routes import Access, Lookup, Requirement, Source, requirement_for, resource_requirement
from tracking.api.body import request_args
from tracking.artifacts.paths import ArtifactPath, parse_artifact_path
from tracking.db.mlflow3_tables import trace_info
from tracking.db.registry_tables import registered_models
from tracking.db.tables import experiments
from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import (
    DEFAULT_WORKSPACE,
    REQUEST_STATE_KEY,
    UNRESTRICTED,
    WORKSPACE_STATE_KEY,
    ResourceScope,
    VisibilityScope,
)
from tracking.store.experiments import default_artifact_location
from tracking.store.logged_models import get_logged_model_experiment_id
from tracking.store.registry_source import parse_source
from tracking.store.registry_validation import PROMPT_SOURCE_PLACEHOLDERS
from tracking.store.runs import get_run_experiment_id

# Grant changes made by another process are picked up within this many seconds (one PK read); with
# Redis, a pushed "grants changed" message makes every process read the generation on its next request.
REFRESH_SECONDS = 1.0
# An experiment's name (which name patterns match) is re-read at most this often.
NAME_CACHE_SECONDS = 1.0
_SKIP = object()  # a lookup that needs no check (an optional field absent, a remote model source)
# A resource that exists in another workspace: missing for everyone (see Authorizer._locate_all).
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
                   is_admin=principal.is_admin, read_only_token=principal.read_only)


def to_resource_scope(spec) -> ResourceScope:
    """Tracking's SQL-applicable scope from the policy's :class:`~policies.model.ScopeSpec`."""
    return ResourceScope(unrestricted=spec.unrestricted, ids=spec.ids, name_patterns=spec.globs,
                         denied_ids=spec.denied_ids, denied_name_patterns=spec.denied_globs, names=spec.names,
                         hidden_names=spec.hidden_names, denied_names=spec.denied_names)


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
        self._scopes: OrderedDict[Subject, VisibilityScope] = OrderedDict()
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

    def visibility(self, subject: Subject) -> VisibilityScope:
        """What ``subject`` may see, memoised per subject until the policy changes."""
        policy = self.current()
        with self._lock:
            scope = self._scopes.get(subject)
            if scope is not None:
                self._scopes.move_to_end(subject)
                return scope
        scope = VisibilityScope(
            experiments=to_resource_scope(visible(policy, subject, ResourceKind.EXPERIMENT)),
            registered_models=to_resource_scope(visible(policy, subject, ResourceKind.REGISTERED_MODEL)),
        )
        with self._lock:
            self._scopes[subject] = scope
            while len(self._scopes) > 10_000:
                self._scopes.popitem(last=False)
        return scope


@dataclass(frozen=True)
class Located:
    """A requirement with the resource it applies to (None: the check needs no resource)."""

    requirement: Requirement
    resource: Resource | None
    position: int = 0  # the check's place in requirement.checks(): optional checks may be absent


class ResourceResolver:
    """Turns a locator's value into a Resource with one indexed read; None when it does not exist."""

    def __init__(self, engine: Engine, *, name_seconds: float = NAME_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        # A run or logged model never moves to another experiment and its server-made id is never reused:
        # its owner can be cached. Trace ids are chosen by clients and reused after a delete (possibly in
        # another experiment), so a trace's owner is read every time (_trace).
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

    def _cached_owner(self, kind: str, key: str, load: Callable[[], str | None]) -> str | None:
        with self._lock:
            found = self._owner_cache.get((kind, key))
        if found is not None:
            return found
        value = load()
        if value is not None:
            with self._lock:
                self._owner_cache[(kind, key)] = value
                while len(self._owner_cache) > 100_000:
                    self._owner_cache.popitem(last=False)
        return value

    def _experiment(self, conn, experiment_id: str, workspace: str | None) -> Resource | object | None:
        # An experiment of another workspace is missing: hidden == missing, for administrators too.
        if not (experiment_id.isascii() and experiment_id.isdigit()) or len(experiment_id) > 18:
            return None
        key = int(experiment_id)
        now = self.clock()
        cached = self._names.get(key)
        if cached is not None and 0 <= now - cached[2] < self.name_seconds:
            return Resource.experiment(experiment_id, cached[0]) if workspace in (None, cached[1]) else ELSEWHERE
        row = conn.execute(select(experiments.c.name, experiments.c.workspace)
                           .where(experiments.c.experiment_id == key)).first()
        if row is None:
            self._names.pop(key, None)
            return None
        if len(self._names) >= 100_000:
            self._names.clear()
        self._names[key] = (row.name, row.workspace, now)
        return Resource.experiment(experiment_id, row.name) if workspace in (None, row.workspace) else ELSEWHERE

    def _trace(self, conn, trace_id: str, workspace: str | None) -> Resource | object | None:
        # The trace's experiment with its current name, in one primary-key read, never cached (see __init__).
        row = conn.execute(select(experiments.c.experiment_id, experiments.c.name, experiments.c.workspace)
                           .select_from(trace_info.join(experiments,
                                                        experiments.c.experiment_id == trace_info.c.experiment_id))
                           .where(trace_info.c.request_id == trace_id)).first()
        if row is None:
            return None
        if workspace not in (None, row.workspace):
            return ELSEWHERE
        return Resource.experiment(str(row.experiment_id), row.name)

    def _model(self, conn, name: str, workspace: str | None) -> Resource | object | None:
        # Grants name the model's stable id, patterns its current name: both come from the one row.
        row = conn.execute(select(registered_models.c.model_id, registered_models.c.workspace)
                           .where(registered_models.c.name == name)).first()
        if row is None:
            return None
        return Resource.registered_model(row.model_id, name) if workspace in (None, row.workspace) else ELSEWHERE

    def resolve(self, conn, lookup: Lookup, value: str, kind: ResourceKind | None,
                workspace: str | None) -> Resource | object | None:
        """The resource ``value`` names under ``lookup`` in ``workspace`` (None when missing, ELSEWHERE when
        in another workspace, _SKIP when not checkable). ``workspace`` None: any workspace (server-wide
        administrator tools, such as ``perms explain``, name resources of every workspace)."""
        if lookup is Lookup.EXPERIMENT_ID:
            return self._experiment(conn, value, workspace)
        if lookup is Lookup.EXPERIMENT_NAME:
            # Names are unique per workspace: the request's workspace says which experiment a name means; a
            # tool deciding in any workspace (None) means 'default' by a name, and any experiment by its id.
            row = conn.execute(select(experiments.c.experiment_id).where(
                experiments.c.name == value, experiments.c.workspace == (workspace or DEFAULT_WORKSPACE))).first()
            return None if row is None else Resource.experiment(str(row.experiment_id), value)
        if lookup is Lookup.RUN:
            exp = self._cached_owner("run", value, lambda: get_run_experiment_id(conn, value))
            return None if exp is None else self._experiment(conn, exp, workspace)
        if lookup is Lookup.TRACE:
            return self._trace(conn, value, workspace)
        if lookup is Lookup.LOGGED_MODEL:
            exp = self._cached_owner("model", value, lambda: get_logged_model_experiment_id(conn, value))
            return None if exp is None else self._experiment(conn, exp, workspace)
        if lookup is Lookup.ARTIFACT_PATH:
            # The same parser the artifact handlers use, so the check and the write agree on the owner.
            located = parse_artifact_path(value, allow_trailing_slash=True)
            found = self._experiment(conn, located.owner.experiment_id, workspace)
            if isinstance(found, Resource) and not self._under_its_prefix(conn, located):
                return ELSEWHERE  # refused for everyone, administrators included: one place per experiment
            return found
        if lookup is Lookup.MODEL_NAME:
            return self._model(conn, value, workspace)
        if lookup is Lookup.SOURCE_URI:
            return self._source(conn, value, workspace)
        if lookup is Lookup.USERNAME:
            return Resource.user(value)
        if lookup is Lookup.NEW_NAME:
            return Resource(kind or ResourceKind.NONE, None, value)
        raise invalid_parameter(f"unsupported lookup {lookup}")  # pragma: no cover - table is checked by tests

    @staticmethod
    def _under_its_prefix(conn, located: ArtifactPath) -> bool:
        """Whether a path names its experiment's artifacts where they live: under ``workspaces/<name>/`` for an
        experiment given that location (tracking's default outside 'default'), unprefixed otherwise. So one
        experiment's files are never written to, or read from, a second place (another workspace's prefix)."""
        row = conn.execute(select(experiments.c.workspace, experiments.c.artifact_location)
                           .where(experiments.c.experiment_id == int(located.owner.experiment_id))).first()
        if row is None:
            return False
        prefixed = row.workspace != DEFAULT_WORKSPACE and row.artifact_location == default_artifact_location(
            int(located.owner.experiment_id), row.workspace)
        if located.workspace is None:
            return not prefixed
        return prefixed and located.workspace == row.workspace

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
            return self._model(conn, parsed.model_name, workspace)
        if parsed.kind == "proxied" and parsed.parts:
            return self.resolve(conn, Lookup.ARTIFACT_PATH, "/".join(parsed.parts), None, workspace)
        return _SKIP  # a remote URI the server never reads


class DecisionMemo:
    """Decisions of one compiled policy by (subject, operation, resources): ``decide`` is pure, so a repeat
    of the same request by the same principal is answered without re-evaluating the grants. A new
    compiled policy (grants or file changed) starts an empty memo."""

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = max_entries
        self._policy: CompiledPolicy | None = None
        self._entries: dict[tuple, Decision] = {}

    def decide(self, policy: CompiledPolicy, key: tuple, compute: Callable[[], Decision]) -> Decision:
        """The memoised decision for ``key`` under ``policy``, computing it on a miss."""
        entries = self._entries
        if policy is not self._policy:
            entries = self._entries = {}
            self._policy = policy
        decision = entries.get(key)
        if decision is None:
            decision = compute()
            if len(entries) >= self.max_entries:
                entries.clear()
            entries[key] = decision
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


class Authorizer:
    """The FastAPI dependency that authorizes every routed request (see the module docstring)."""

    def __init__(self, holder: PolicyHolder, resolver: ResourceResolver, auditor: Auditor | None,
                 workspaces: WorkspaceDirectory | None = None):
        self.holder = holder
        self.resolver = resolver
        self.auditor = auditor
        self.workspaces = workspaces or WorkspaceDirectory(holder.engine, enabled=False)
        self._decisions = DecisionMemo()

    async def __call__(self, request: Request) -> None:
        route = request.scope.get("route")
        operation_id = getattr(route, "operation_id", None)
        requirement = requirement_for(operation_id) if operation_id else None
        principal: Principal | None = getattr(request.state, "principal", None)
        subject = subject_of(principal)
        if requirement is not None and requirement.access is Access.PUBLIC:
            return
        if requirement is None:
            decision = decide(self.holder.current(), subject, None)
            self._deny(request, operation_id, subject, decision, "This operation is not permitted.",
                       "PERMISSION_DENIED")
        if subject.kind == "anonymous":
            # Presented credentials that failed say why; none at all is the same refusal (401).
            raise getattr(request.state, AUTHENTICATION_ERROR, None) or Unauthenticated(NOT_AUTHENTICATED)
        workspace, subject = self._workspace(request, subject)
        if requirement.access is not Access.SEARCH and self.holder.is_admin(subject) and not subject.read_only_token:
            # Administrators bypass the decision (so a burst of creations, each adding an owner grant,
            # does not recompile every grant once per request), not the workspace: a resource of
            # another workspace is missing for them too.
            await self._locate_all(request, requirement, workspace, missing_is_error=True)
            self._scope(request, requirement, subject, workspace, admin=True)
            return
        policy = self.holder.current()
        if requirement.access is Access.SEARCH:
            if not policy.is_admin(subject):
                policy = self.holder.current(recheck=True)  # a just-made grant must show in the results
            decision = decide(policy, subject, requirement, None)
            if not decision.allowed:
                self._deny(request, operation_id, subject, decision, "Permission denied.", "PERMISSION_DENIED")
            self._scope(request, requirement, subject, workspace, admin=policy.is_admin(subject))
            return
        if policy.is_admin(subject) and not subject.read_only_token:
            await self._locate_all(request, requirement, workspace, missing_is_error=True)
            self._scope(request, requirement, subject, workspace, admin=True)
            return  # administrators bypass: no decision needed
        checks = await self._locate_all(request, requirement, workspace)
        # Keyed by each check's position too: two requests naming the same resource through different
        # (optional) checks need different permissions and must not share a decision.
        memo_key = (subject, operation_id, tuple((c.position, c.resource) for c in checks))
        decision = self._decisions.decide(policy, memo_key,
                                          lambda: decide_all(policy, subject,
                                                             [(c.requirement, c.resource) for c in checks]))
        if not decision.allowed:
            # Before refusing, make sure no other process granted access since the last check.
            fresher = self.holder.current(recheck=True)
            if fresher is not policy:
                policy = fresher
                decision = decide_all(policy, subject, [(c.requirement, c.resource) for c in checks])
        if decision.allowed:
            self._scope(request, requirement, subject, workspace, admin=False)
            return
        denied = next((c for c in checks if not decide(policy, subject, c.requirement, c.resource).allowed), None)
        resource = denied.resource if denied else None
        if resource is not None and resource.id is None and resource.kind not in (ResourceKind.NONE,) \
                and denied.requirement.access is Access.RESOURCE:
            # The resource does not exist: answer as for one the caller may not see.
            self._deny(request, operation_id, subject, decision, _missing_message(denied.requirement),
                       "RESOURCE_DOES_NOT_EXIST")
        if denied is not None and denied.requirement.access is Access.RESOURCE and resource is not None:
            can_read = decide(policy, subject, resource_requirement(Permission.READ, resource.kind), resource)
            if not can_read.allowed:
                self._deny(request, operation_id, subject, decision, _missing_message(denied.requirement),
                           "RESOURCE_DOES_NOT_EXIST")
        self._deny(request, operation_id, subject, decision,
                   f"Permission denied: {_short_reason(decision)}", "PERMISSION_DENIED")

    def _scope(self, request: Request, requirement: Requirement, subject: Subject, workspace: str, *,
               admin: bool) -> None:
        """Give a listing handler the caller's visibility scope in ``workspace``; tracking shows nothing without one."""
        if requirement.scoped:
            scope = UNRESTRICTED if admin else self.holder.visibility(subject)
            setattr(request.state, REQUEST_STATE_KEY,
                    VisibilityScope(experiments=scope.experiments.in_workspace(workspace),
                                    registered_models=scope.registered_models.in_workspace(workspace)))

    def _workspace(self, request: Request, subject: Subject) -> tuple[str, Subject]:
        """The request's workspace (validated; membership decides) and the subject with its roles there."""
        directory = self.workspaces
        workspace = directory.requested(request.headers.get(WORKSPACE_HEADER))
        admin = self.holder.is_admin(subject)
        if admin and workspace == DEFAULT_WORKSPACE and not subject.read_only_token:
            # Administrators bypass decisions and are members of 'default': no compiled policy needed.
            setattr(request.state, WORKSPACE_STATE_KEY, workspace)
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
        subject = view.subject_in(subject, workspace)
        request.state.workspace_subject = subject
        return workspace, subject

    async def _locate_all(self, request: Request, requirement: Requirement, workspace: str, *,
                          missing_is_error: bool = False) -> list[Located]:
        """Every check's resource in ``workspace``; with ``missing_is_error`` (administrators), one of another
        workspace answers 404 at once."""
        args = None
        headers = None
        located: list[Located] = []
        with _LazyConnection(self.resolver.engine) as conn:
            for position, check in enumerate(requirement.checks()):
                locator = check.locator
                if locator is None:
                    located.append(Located(check, None, position))
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
                    if resource is ELSEWHERE:
                        if missing_is_error:
                            # Administrators bypass decisions, so a missing resource reaches tracking, which
                            # answers it; one of another workspace must not: it is refused here. (An
                            # administrator is a member of every workspace: the message differing from
                            # tracking's reveals nothing they cannot see by switching.)
                            raise MlflowError(_missing_message(check), "RESOURCE_DOES_NOT_EXIST")
                        resource = None  # everyone else: decided exactly like a missing resource
                    if resource is None:
                        # Missing: a placeholder with no id, decided like a resource the caller cannot see.
                        kind = check.resource_kind or ResourceKind.EXPERIMENT
                        resource = Resource(kind, None, None)
                    located.append(Located(check, resource, position))
        return located

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


_MISSING_BY_KIND = {
    ResourceKind.EXPERIMENT: "The requested resource does not exist.",
    ResourceKind.REGISTERED_MODEL: "The requested registered model does not exist.",
}


def _missing_message(requirement: Requirement) -> str:
    return _MISSING_BY_KIND.get(requirement.resource_kind, "The requested resource does not exist.")


def _short_reason(decision: Decision) -> str:
    # The reason names the caller and the rule, never another principal's grants or a secret.
    return decision.reason
