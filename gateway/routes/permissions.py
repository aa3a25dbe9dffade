"""MLflow-compatible permission APIs, so existing scripts and ``AuthServiceClient`` keep working.

- MLflow 2.x: ``/api/2.0/mlflow/experiments/permissions/create|get|update|delete`` and
  ``/api/2.0/mlflow/registered-models/permissions/create|get|update|delete``.
- MLflow 3.x: ``/api/3.0/mlflow/users/permissions/grant|revoke|get|list``.

Grants land in ``auth_grants`` (source ``api``) and reach every server process through the policy
generation counter. Who may grant: an administrator, or a holder of MANAGE on the resource (the
route table checks the 2.x routes; the 3.x routes name the resource in two fields, so their handler
asks the same authorizer). In an authoritative policy file, a grant that contradicts a file entry
is refused.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Depends
from sqlalchemy import Connection
from starlette.requests import Request

from auth.grants import list_grants, put_grant, revoke_grant
from auth.principal import Principal
from gateway.authz import bypasses, request_context, subject_of
from gateway.grant_selectors import UnknownResource, shown_rows, stored_selector
from policies.decide import api_grant_conflict, decide
from policies.model import Decision, Grant, Permission, Resource, ResourceKind, Subject
from policies.routes import Lookup, resource_requirement
from tracking.api.body import Args, request_args
from tracking.api.responses import JSONBody, ok
from tracking.errors import MlflowError, invalid_parameter, not_found
from tracking.scope import request_workspace
from tracking.services import tracking_of

router_v2 = APIRouter()  # mounted at /api/2.0/mlflow and /ajax-api/2.0/mlflow
router_v3 = APIRouter()  # mounted at /api/3.0/mlflow and /ajax-api/3.0/mlflow
ARGS = Depends(request_args)

_RESOURCE_TYPES = {"experiment": ResourceKind.EXPERIMENT, "registered_model": ResourceKind.REGISTERED_MODEL}


def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise MlflowError("Authentication required.", "UNAUTHENTICATED")
    return principal


def _permission(args: Args) -> str:
    text = args.str("permission", required=True)
    try:
        return Permission.parse(text).name
    except ValueError:
        raise invalid_parameter(
            f"Invalid permission '{text}'. Expected one of NO_PERMISSIONS, READ, EDIT, MANAGE.") from None


def _target(request: Request, username: str | None):
    user = request.app.state.identity.store.user_by_name(username or "")
    if user is None:
        raise not_found(f"User with username={username} not found")
    return f"{'service' if user.kind == 'service' else 'user'}:{user.username}", user


def _named_subject(request: Request, username: str | None) -> str:
    """The subject a username names, for reading or removing grants.

    An unknown name reads as a user holding no grant, so a resource manager cannot tell from the answer
    whether an account exists (granting still needs a real account).
    """
    user = request.app.state.identity.store.user_by_name(username or "")
    if user is None:
        return f"user:{username}"
    return f"{'service' if user.kind == 'service' else 'user'}:{user.username}"


def _no_permission(subject: str, selector: str) -> MlflowError:
    # The same words for an unknown name and for an account without a grant (and no account kind in them).
    return not_found(f"No permission of {subject.partition(':')[2]!r} on {selector} exists")


def _selector(kind: ResourceKind, resource_id: str) -> str:
    return f"experiment:{resource_id}" if kind is ResourceKind.EXPERIMENT else f"model:{resource_id}"


def _audit(request: Request, action: str, principal: Principal, target: str, reason: str) -> None:
    request.app.state.identity.auditor.record(action, "success", actor=principal.name,
                                              target=target, client=getattr(request.state, "client_ip", None),
                                              reason=reason)


def _grant(request: Request, subject: str, selector: str, permission: str) -> None:
    holder = request.app.state.policy_holder
    conflict = api_grant_conflict(holder.policy_file, Grant.from_api(0, subject, selector, permission))
    if conflict:
        raise MlflowError(f"Refused: {conflict}", "INVALID_PARAMETER_VALUE")
    principal = _principal(request)
    with tracking_of(request).engine.begin() as conn:
        put_grant(conn, subject, _stored(conn, selector, request_workspace(request), granting=True), permission,
                  created_by=f"{principal.kind}:{principal.name}")
    # Audited after the commit: the audit write uses its own connection, which on SQLite would wait
    # for the grant's write lock until it timed out, and a rolled-back grant must not be recorded.
    _audit(request, "grant", principal, f"{subject} {selector}", f"permission {permission}")
    _done(request)


def _revoke(request: Request, subject: str, selector: str) -> None:
    with tracking_of(request).engine.begin() as conn:
        revoked = revoke_grant(conn, subject, _stored(conn, selector, request_workspace(request)))
    if not revoked:
        raise _no_permission(subject, selector)
    _audit(request, "revoke", _principal(request), f"{subject} {selector}", "revoked")
    _done(request)


def _stored(conn: Connection, selector: str, workspace: str, *, granting: bool = False) -> str:
    """The stored form of ``selector`` (the stable id of the model of that name in the request's ``workspace``);
    a model gone since the check, or only in another workspace, is missing (404)."""
    try:
        return stored_selector(conn, selector, granting=granting, workspace=workspace)
    except UnknownResource:
        raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST") from None


def _stored_permission(conn: Connection, subject: str, selector: str, workspace: str) -> str:
    rows = list_grants(conn, subject=subject, resource=_stored(conn, selector, workspace))
    if not rows:
        raise _no_permission(subject, selector)
    return rows[-1].permission


def _done(request: Request) -> None:
    request.app.state.policy_holder.invalidate()


def _experiment_id(request: Request, args: Args) -> str:
    value = args.str("experiment_id", required=True)
    if not (value.isascii() and value.isdigit()):  # str.isdigit() also accepts '¹', which int() refuses
        raise invalid_parameter(f"Invalid experiment id '{value}'")
    return value


def _v2(kind: ResourceKind, id_field: str, path: str, op: str, body_key: str) -> None:
    """Register the four MLflow 2.x permission routes of one resource kind."""

    def resource_id(request: Request, args: Args) -> str:
        if kind is ResourceKind.EXPERIMENT:
            return _experiment_id(request, args)
        return args.str(id_field, required=True, allow_empty=False)

    def create(request: Request, args: Args = ARGS) -> JSONBody:
        rid, permission = resource_id(request, args), _permission(args)
        subject, user = _target(request, args.str("username", required=True))
        _grant(request, subject, _selector(kind, rid), permission)
        return ok({body_key: {id_field: rid, "user_id": user.id, "permission": permission}})

    def get(request: Request, args: Args = ARGS) -> JSONBody:
        rid = resource_id(request, args)
        subject, selector = _named_subject(request, args.str("username", required=True)), _selector(kind, rid)
        with tracking_of(request).engine.connect() as conn:
            permission = _stored_permission(conn, subject, selector, request_workspace(request))
        user = request.app.state.identity.store.user_by_name(subject.partition(":")[2])
        if user is None:  # a grant left behind by a deleted account reads as no grant
            raise _no_permission(subject, selector)
        return ok({body_key: {id_field: rid, "user_id": user.id, "permission": permission}})

    def delete(request: Request, args: Args = ARGS) -> JSONBody:
        rid = resource_id(request, args)
        subject = _named_subject(request, args.str("username", required=True))
        _revoke(request, subject, _selector(kind, rid))
        return ok({})

    router_v2.add_api_route(f"{path}/create", create, methods=["POST"], operation_id=f"{op}.create")
    router_v2.add_api_route(f"{path}/get", get, methods=["GET"], operation_id=f"{op}.get")
    # One operation id per method: OpenAPI requires them unique. MLflow's own methods keep the plain id.
    router_v2.add_api_route(f"{path}/update", create, methods=["PATCH"], operation_id=f"{op}.update")
    router_v2.add_api_route(f"{path}/update", create, methods=["POST"], operation_id=f"{op}.update_via_post")
    router_v2.add_api_route(f"{path}/delete", delete, methods=["DELETE"], operation_id=f"{op}.delete")
    router_v2.add_api_route(f"{path}/delete", delete, methods=["POST"], operation_id=f"{op}.delete_via_post")


_v2(ResourceKind.EXPERIMENT, "experiment_id", "/experiments/permissions", "permissions.experiments",
    "experiment_permission")
_v2(ResourceKind.REGISTERED_MODEL, "name", "/registered-models/permissions", "permissions.registered_models",
    "registered_model_permission")


def _typed_resource(request: Request, args: Args) -> tuple[ResourceKind, str, Resource | None]:
    resource_type = args.str("resource_type", required=True)
    kind = _RESOURCE_TYPES.get(resource_type or "")
    if kind is None:
        raise invalid_parameter(
            f"Unsupported resource_type '{resource_type}'. Expected one of {', '.join(_RESOURCE_TYPES)}.")
    rid = args.str("resource_id", required=True, allow_empty=False)
    authorizer = request.app.state.authorizer
    with tracking_of(request).engine.connect() as conn:
        lookup = Lookup.EXPERIMENT_ID if kind is ResourceKind.EXPERIMENT else Lookup.MODEL_NAME
        resource = authorizer.resolver.resolve(conn, lookup, rid, kind, request_workspace(request))
    return kind, rid, resource if isinstance(resource, Resource) else None


def _require_permission(request: Request, subject: Subject, kind: ResourceKind, resource: Resource | None,
                        level: Permission = Permission.MANAGE) -> None:
    """The 3.x routes name their resource in two fields; check ``level`` on it like the route table would."""
    # Rechecked now, as the authorizer does before refusing: the caller may have just become owner elsewhere.
    policy = request.app.state.policy_holder.current(recheck=True)
    if bypasses(subject, policy.is_admin(subject)):
        return
    context = request_context(request, request_workspace(request))
    authorizer = request.app.state.authorizer
    # Audited under the route's operation id, like every denial the route table makes.
    operation_id = getattr(request.scope.get("route"), "operation_id", None)
    if resource is None:
        missing = decide(policy, subject, resource_requirement(level, kind), Resource(kind, None, None), context)
        authorizer.audit_denial(request, operation_id, subject, missing)
        raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST")
    decision = decide(policy, subject, resource_requirement(level, kind), resource, context)
    if not decision.allowed:
        readable = decide(policy, subject, resource_requirement(Permission.READ, kind), resource, context).allowed
        authorizer.audit_denial(request, operation_id, subject, decision)
        if not readable:
            raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST")
        raise MlflowError(f"Permission denied: {decision.reason}", "PERMISSION_DENIED")


@router_v3.post("/users/permissions/grant", operation_id="permissions.users.grant")
def grant_user_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """Grant a user a permission on an experiment or registered model (MLflow 3.x)."""
    kind, rid, resource = _typed_resource(request, args)
    _require_permission(request, subject_of(_principal(request)), kind, resource)
    if resource is None:
        raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST")
    permission = _permission(args)
    subject, _ = _target(request, args.str("username", required=True))
    _grant(request, subject, _selector(kind, rid), permission)
    return ok({})


@router_v3.post("/users/permissions/revoke", operation_id="permissions.users.revoke")
def revoke_user_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """Remove a user's grant on an experiment or registered model (MLflow 3.x)."""
    kind, rid, resource = _typed_resource(request, args)
    _require_permission(request, subject_of(_principal(request)), kind, resource)
    subject = _named_subject(request, args.str("username", required=True))
    _revoke(request, subject, _selector(kind, rid))
    return ok({})


@router_v3.get("/users/permissions/get", operation_id="permissions.users.get")
def get_user_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """A user's effective permission on a resource: ``{"allowed", "permission"}`` as MLflow answers."""
    kind, _, resource = _typed_resource(request, args)
    caller = _principal(request)
    username = args.str("username", required=True)
    # Asking about oneself needs READ: answering NO_PERMISSIONS for a resource one cannot see, but
    # 404 for a missing one, would tell which ids and names exist.
    level = Permission.READ if username == caller.name else Permission.MANAGE
    _require_permission(request, subject_of(caller), kind, resource, level)
    if resource is None:
        raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST")
    store = request.app.state.identity.store
    user = store.user_by_name(username)
    policy = request.app.state.policy_holder.current()
    # Only an administrator learns who else is one (SECURITY.md, "Authorization"): for anyone else the
    # answer is what the target's grants and groups give on this resource, as if no account were an
    # administrator (neither by its flag nor by the file's access.admins).
    reveal_admins = policy.is_admin(subject_of(caller)) and not caller.read_only
    if user is None:
        # Answered as for an account with no group and no grant: the answer does not tell who exists.
        target = Subject(kind="user", name=username, groups=frozenset(), is_admin=False)
    else:
        target = Subject(kind="service" if user.kind == "service" else "user", name=user.username,
                         groups=frozenset(store.groups_of(user.id)), is_admin=user.is_admin and reveal_admins)
    if not reveal_admins:
        policy = replace(policy, admins=frozenset())
    effective = Permission.NO_PERMISSIONS
    context = request_context(request, request_workspace(request))
    for level in (Permission.READ, Permission.EDIT, Permission.MANAGE):
        if decide(policy, target, resource_requirement(level, kind), resource, context).allowed:
            effective = level
    return ok({"allowed": effective >= Permission.READ, "permission": effective.name})


@router_v3.get("/users/permissions/list", operation_id="permissions.users.list")
def list_user_permissions(request: Request, args: Args = ARGS) -> JSONBody:
    """A user's stored grants (admins, or the user themself), in MLflow 3.x's row shape."""
    caller = _principal(request)
    username = args.str("username", required=True)
    policy = request.app.state.policy_holder.current()
    if username != caller.name and not policy.is_admin(subject_of(caller)):
        refusal = Decision(False, f"only administrators may list another user's permissions and "
                                  f"{caller.kind} {caller.name} is not one", "admin-only")
        request.app.state.authorizer.audit_denial(request, "permissions.users.list", subject_of(caller), refusal)
        raise MlflowError("Only administrators may list another user's permissions.", "PERMISSION_DENIED")
    store = request.app.state.identity.store
    user = store.user_by_name(username)
    if user is None:
        raise not_found(f"User with username={username} not found")
    subject = f"{'service' if user.kind == 'service' else 'user'}:{user.username}"
    with tracking_of(request).engine.connect() as conn:
        rows = shown_rows(conn, list_grants(conn, subject=subject))
    permissions = []
    for row in rows:
        prefix, _, value = row.resource.partition(":")
        resource_type = "experiment" if prefix.startswith("experiment") else "registered_model"
        permissions.append({"role_id": row.id, "role_name": f"__user_{user.id}__", "workspace": "default",
                            "resource_type": resource_type, "resource_pattern": value,
                            "permission": row.permission})
    return ok({"is_admin": user.is_admin, "permissions": permissions})


# Only MLflow's web UI asks this, under its prefix only (gateway/app.py mounts it at /ajax-api/3.0/mlflow).
router_ui = APIRouter()


@router_ui.get("/users/current/permissions", operation_id="permissions.users.current")
def current_user_permissions(request: Request) -> JSONBody:
    """MLflow's role-permission rows of the caller, which its UI reads (workspace administration).

    mlgate has no roles and no workspaces: no rows, and whether the caller is an administrator. What the
    caller may do is decided on every request by the authorizer, never by this advisory answer.
    """
    principal: Principal = request.state.principal
    return ok({"is_admin": bool(principal.is_admin and not principal.read_only), "permissions": []})
