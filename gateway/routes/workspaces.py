"""MLflow 3's workspaces and roles APIs, as ``mlflow.*_workspace`` and ``AuthServiceClient`` call them.

- ``/api/3.0/mlflow/workspaces[/<name>]``: list (only the caller's workspaces), get (a workspace the
  caller is not a member of is missing), create / update / delete (server administrators).
- ``/api/3.0/mlflow/roles/*`` and ``/users/roles/list``: roles of one workspace (auth/roles.py: groups
  and grants, not a second permission system). Server administrators manage every role; a workspace
  administrator (a role holding ``workspace`` MANAGE) manages the roles of that workspace only. A role
  the caller may not manage, or whose workspace they are not a member of, is missing.

Every change bumps the policy generation in its transaction (every process sees it on its next check)
and is audited with its workspace.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import delete, func, insert, select, update
from starlette.requests import Request
from starlette.responses import Response

from auth import roles as store
from auth.grants import bump_generation
from auth.store import now_ms
from gateway.authz import bypasses, subject_of
from gateway.workspaces import WorkspaceView, check_workspace_name, workspace_missing, workspaces_disabled
from policies.model import Subject
from tracking.api.body import Args, request_args
from tracking.api.responses import JSONBody, ok
from tracking.db.registry_tables import registered_models
from tracking.db.tables import experiments
from tracking.db.workspace_tables import workspaces
from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import DEFAULT_WORKSPACE
from tracking.services import tracking_of

router = APIRouter()  # mounted at /api/3.0/mlflow and /ajax-api/3.0/mlflow
ARGS = Depends(request_args)


def _caller(request: Request) -> tuple[Subject, bool]:
    subject = getattr(request.state, "workspace_subject", None) or subject_of(request.state.principal)
    holder = request.app.state.policy_holder
    return subject, bypasses(subject, holder.is_admin(subject))


def _view(request: Request) -> WorkspaceView:
    holder = request.app.state.policy_holder
    return request.app.state.authorizer.workspaces.view(holder.current(recheck=True))


def _enabled(request: Request) -> None:
    if not request.app.state.authorizer.workspaces.enabled:
        raise workspaces_disabled()


def _changed(request: Request) -> None:
    request.app.state.policy_holder.invalidate()


def _audit(request: Request, action: str, workspace: str, target: str, subject: Subject) -> None:
    auditor = request.app.state.identity.auditor
    if auditor is not None:
        client = getattr(request.state, "client_ip", None) or (request.client.host if request.client else None)
        auditor.record(action, "success", actor=subject.key, target=f"workspace:{workspace} {target}".strip(),
                       client=client, workspace=workspace)


def _workspace_json(row) -> dict:
    return {"name": row.name, "description": row.description or ""}


def _visible_workspace(request: Request, name: str):
    """The workspace row, if it exists and the caller is a member; else the missing answer."""
    if name != DEFAULT_WORKSPACE:
        check_workspace_name(name)
    subject, admin = _caller(request)
    if not _view(request).is_member(subject, name, admin=admin):
        raise workspace_missing(name)
    with tracking_of(request).engine.connect() as conn:
        row = conn.execute(select(workspaces).where(workspaces.c.name == name)).first()
    if row is None:
        raise workspace_missing(name)
    return row


def _require_server_admin(request: Request) -> Subject:
    subject, admin = _caller(request)
    if not admin:
        raise MlflowError("Permission denied: only server administrators manage workspaces.", "PERMISSION_DENIED")
    return subject


@router.get("/workspaces", operation_id="workspaces.list")
def list_workspaces(request: Request) -> JSONBody:
    """The workspaces the caller is a member of (administrators: all)."""
    _enabled(request)
    subject, admin = _caller(request)
    names = _view(request).visible_workspaces(subject, admin=admin)
    with tracking_of(request).engine.connect() as conn:
        rows = conn.execute(select(workspaces).where(workspaces.c.name.in_(names)).order_by(workspaces.c.name))
        return ok({"workspaces": [_workspace_json(r) for r in rows]})


@router.get("/workspaces/{workspace_name}", operation_id="workspaces.get")
def get_workspace(request: Request, workspace_name: str) -> JSONBody:
    """One workspace the caller is a member of."""
    _enabled(request)
    return ok({"workspace": _workspace_json(_visible_workspace(request, workspace_name))})


@router.post("/workspaces", operation_id="workspaces.create")
def create_workspace(request: Request, args: Args = ARGS) -> JSONBody:
    """A new workspace (server administrators); 201 as MLflow answers."""
    _enabled(request)
    subject = _require_server_admin(request)
    name = args.str("name", required=True, allow_empty=False)
    description = args.str("description", max_length=5000)
    if name == DEFAULT_WORKSPACE:
        raise invalid_parameter(f"The '{DEFAULT_WORKSPACE}' workspace is reserved and cannot be created")
    check_workspace_name(name)
    if args.str("default_artifact_root"):
        # A client-chosen artifact root could name a local path the server would write to.
        raise invalid_parameter("default_artifact_root is not supported: a workspace's artifacts live under "
                                "the server's artifact root, in a prefix of their own.")
    if args.obj("trace_archival_config"):
        raise invalid_parameter("trace_archival_config is not supported by mlgate.")
    with tracking_of(request).engine.begin() as conn:
        if conn.execute(select(workspaces.c.name).where(workspaces.c.name == name)).first():
            raise MlflowError(f"Workspace '{name}' already exists.", "RESOURCE_ALREADY_EXISTS")
        now = now_ms()
        conn.execute(insert(workspaces).values(name=name, description=description, creation_time=now,
                                               last_update_time=now))
        bump_generation(conn)
        row = conn.execute(select(workspaces).where(workspaces.c.name == name)).first()
    _changed(request)
    _audit(request, "workspace.create", name, "", subject)
    return ok({"workspace": _workspace_json(row)}, status_code=201)


@router.patch("/workspaces/{workspace_name}", operation_id="workspaces.update")
def update_workspace(request: Request, workspace_name: str, args: Args = ARGS) -> JSONBody:
    """Change a workspace's description (server administrators)."""
    _enabled(request)
    subject = _require_server_admin(request)
    _visible_workspace(request, workspace_name)
    if args.str("default_artifact_root") or args.obj("trace_archival_config"):
        raise invalid_parameter("Only a workspace's description can be changed on mlgate.")
    description = args.str("description", max_length=5000)
    if description is None:
        raise invalid_parameter("Workspace update must have at least one key")
    with tracking_of(request).engine.begin() as conn:
        conn.execute(update(workspaces).where(workspaces.c.name == workspace_name)
                     .values(description=description, last_update_time=now_ms()))
        row = conn.execute(select(workspaces).where(workspaces.c.name == workspace_name)).first()
    _audit(request, "workspace.update", workspace_name, "", subject)
    return ok({"workspace": _workspace_json(row)})


@router.delete("/workspaces/{workspace_name}", operation_id="workspaces.delete", status_code=204)
def delete_workspace(request: Request, workspace_name: str):
    """Delete an empty workspace and its roles (server administrators); MLflow's RESTRICT mode only."""
    _enabled(request)
    subject = _require_server_admin(request)
    if workspace_name == DEFAULT_WORKSPACE:
        raise invalid_parameter(f"The '{DEFAULT_WORKSPACE}' workspace is reserved and cannot be deleted")
    _visible_workspace(request, workspace_name)
    mode = request.query_params.get("mode", "RESTRICT")
    if mode != "RESTRICT":
        raise invalid_parameter(f"Deletion mode '{mode}' is not supported by mlgate: delete or move the "
                                "workspace's experiments and models first (RESTRICT).")
    with tracking_of(request).engine.begin() as conn:
        used = conn.execute(select(func.count()).select_from(experiments)
                            .where(experiments.c.workspace == workspace_name)).scalar_one()
        used += conn.execute(select(func.count()).select_from(registered_models)
                             .where(registered_models.c.workspace == workspace_name)).scalar_one()
        if used:
            raise MlflowError(f"Workspace '{workspace_name}' still holds {used} experiments or models "
                              "(deleted ones included); it cannot be deleted.", "INVALID_STATE")
        for role in store.list_roles(conn, workspace_name):
            store.delete_role(conn, role)
        conn.execute(delete(workspaces).where(workspaces.c.name == workspace_name))
        bump_generation(conn)
    _changed(request)
    _audit(request, "workspace.delete", workspace_name, "", subject)
    return Response(status_code=204)


# Roles --------------------------------------------------------------------------------------------------


def _may_manage(request: Request, workspace: str) -> bool:
    subject, admin = _caller(request)
    return admin or _view(request).is_workspace_admin(subject, workspace)


def _role(request: Request, conn, role_id: int | None, *, manage: bool) -> store.Role:
    """The role, if the caller may read it (member of its workspace) or manage it; else missing."""
    role = store.get_role(conn, role_id) if role_id is not None else None
    subject, admin = _caller(request)
    if role is None or not _view(request).is_member(subject, role.workspace, admin=admin) \
            or (manage and not _may_manage(request, role.workspace)):
        raise MlflowError(f"Role with id={role_id} not found.", "RESOURCE_DOES_NOT_EXIST")
    return role


def _role_json(conn, role: store.Role) -> dict:
    return {"id": role.id, "name": role.name, "workspace": role.workspace, "description": role.description,
            "permissions": [_permission_json(p) for p in store.list_permissions(conn, role.id)]}


def _permission_json(p: store.RolePermission) -> dict:
    return {"id": p.id, "role_id": p.role_id, "resource_type": p.resource_type,
            "resource_pattern": p.resource_pattern, "permission": p.permission}


def _store_errors(call):
    try:
        return call()
    except store.RoleError as exc:
        raise MlflowError(str(exc), exc.code) from None
    except ValueError as exc:
        raise invalid_parameter(str(exc)) from None


def _user(request: Request, username: str | None):
    user = request.app.state.identity.store.user_by_name(username or "")
    if user is None:
        raise MlflowError(f"User with username={username} not found.", "RESOURCE_DOES_NOT_EXIST")
    return user


def _subject_key(user) -> str:
    return f"{'service' if user.kind == 'service' else 'user'}:{user.username}"


@router.post("/roles/create", operation_id="roles.create")
def create_role(request: Request, args: Args = ARGS) -> JSONBody:
    """A role in one workspace (server or workspace administrators)."""
    workspace = args.str("workspace", required=True, allow_empty=False)
    name = args.str("name", required=True, allow_empty=False)
    description = args.str("description", max_length=5000)
    _visible_workspace(request, workspace)
    if not _may_manage(request, workspace):
        raise MlflowError(f"Permission denied: you do not administer workspace '{workspace}'.", "PERMISSION_DENIED")
    with tracking_of(request).engine.begin() as conn:
        role = _store_errors(lambda: store.create_role(conn, workspace, name, description))
        body = _role_json(conn, role)
    _changed(request)
    _audit(request, "role.create", workspace, f"role:{role.id}", _caller(request)[0])
    return ok({"role": body})


@router.get("/roles/get", operation_id="roles.get")
def get_role(request: Request, args: Args = ARGS) -> JSONBody:
    """One role of a workspace the caller is a member of."""
    with tracking_of(request).engine.connect() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=False)
        return ok({"role": _role_json(conn, role)})


@router.get("/roles/list", operation_id="roles.list")
def list_roles(request: Request, args: Args = ARGS) -> JSONBody:
    """The roles of one workspace; without ``workspace``, every role (server administrators)."""
    workspace = args.str("workspace")
    if workspace is None:
        _require_server_admin(request)
    else:
        _visible_workspace(request, workspace)
    with tracking_of(request).engine.connect() as conn:
        return ok({"roles": [_role_json(conn, r) for r in store.list_roles(conn, workspace)]})


@router.patch("/roles/update", operation_id="roles.update")
def update_role(request: Request, args: Args = ARGS) -> JSONBody:
    """Rename or describe a role."""
    with tracking_of(request).engine.begin() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        role = _store_errors(lambda: store.update_role(conn, role, args.str("name"), args.str("description")))
        body = _role_json(conn, role)
    _audit(request, "role.update", role.workspace, f"role:{role.id}", _caller(request)[0])
    return ok({"role": body})


@router.delete("/roles/delete", operation_id="roles.delete")
def delete_role(request: Request, args: Args = ARGS) -> JSONBody:
    """Remove a role, its grants and its assignments."""
    with tracking_of(request).engine.begin() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        store.delete_role(conn, role)
    _changed(request)
    _audit(request, "role.delete", role.workspace, f"role:{role.id}", _caller(request)[0])
    return ok({})


@router.post("/roles/permissions/add", operation_id="roles.permissions.add")
def add_role_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """Give a role a permission (stored as a grant to the role's group)."""
    resource_type = args.str("resource_type", required=True, allow_empty=False)
    pattern = args.str("resource_pattern", required=True, allow_empty=False)
    permission = args.str("permission", required=True, allow_empty=False)
    subject = _caller(request)[0]
    with tracking_of(request).engine.begin() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        added = _store_errors(lambda: store.add_permission(conn, role, resource_type, pattern, permission,
                                                           subject.key))
    _changed(request)
    _audit(request, "role.permission.add", role.workspace,
           f"role:{role.id} {resource_type}:{pattern} {permission}", subject)
    return ok({"role_permission": _permission_json(added)})


def _permission_of(request: Request, conn, args: Args) -> tuple[store.RolePermission, store.Role]:
    permission_id = args.int("role_permission_id", required=True)
    found = store.get_permission(conn, permission_id)
    if found is None:
        raise MlflowError(f"Role permission with id={permission_id} not found.", "RESOURCE_DOES_NOT_EXIST")
    try:
        role = _role(request, conn, found.role_id, manage=True)
    except MlflowError:
        raise MlflowError(f"Role permission with id={permission_id} not found.", "RESOURCE_DOES_NOT_EXIST") from None
    return found, role


@router.delete("/roles/permissions/remove", operation_id="roles.permissions.remove")
def remove_role_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """Take a permission from a role (and its grant)."""
    with tracking_of(request).engine.begin() as conn:
        found, role = _permission_of(request, conn, args)
        store.remove_permission(conn, found)
    _changed(request)
    _audit(request, "role.permission.remove", role.workspace, f"role:{role.id} permission:{found.id}",
           _caller(request)[0])
    return ok({})


@router.patch("/roles/permissions/update", operation_id="roles.permissions.update")
def update_role_permission(request: Request, args: Args = ARGS) -> JSONBody:
    """Change a role permission's level."""
    permission = args.str("permission", required=True, allow_empty=False)
    subject = _caller(request)[0]
    with tracking_of(request).engine.begin() as conn:
        found, role = _permission_of(request, conn, args)
        updated = _store_errors(lambda: store.update_permission(conn, found, permission, subject.key))
    _changed(request)
    _audit(request, "role.permission.update", role.workspace, f"role:{role.id} permission:{found.id} {permission}",
           subject)
    return ok({"role_permission": _permission_json(updated)})


@router.get("/roles/permissions/list", operation_id="roles.permissions.list")
def list_role_permissions(request: Request, args: Args = ARGS) -> JSONBody:
    """A role's permissions."""
    with tracking_of(request).engine.connect() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=False)
        return ok({"role_permissions": [_permission_json(p) for p in store.list_permissions(conn, role.id)]})


@router.post("/roles/assign", operation_id="roles.assign")
def assign_role(request: Request, args: Args = ARGS) -> JSONBody:
    """Give a user the role (and so membership of its workspace)."""
    username = args.str("username", required=True, allow_empty=False)
    with tracking_of(request).engine.begin() as conn:
        # The role first: whoever may not manage it learns nothing, not even whether the account exists.
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        user = _user(request, username)
        assignment = _store_errors(lambda: store.assign(conn, role, _subject_key(user)))
    _changed(request)
    _audit(request, "role.assign", role.workspace, f"role:{role.id} {_subject_key(user)}", _caller(request)[0])
    return ok({"assignment": {"id": assignment.id, "user_id": user.id, "role_id": role.id}})


@router.delete("/roles/unassign", operation_id="roles.unassign")
def unassign_role(request: Request, args: Args = ARGS) -> JSONBody:
    """Take the role from a user."""
    username = args.str("username", required=True, allow_empty=False)
    with tracking_of(request).engine.begin() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        user = _user(request, username)
        store.unassign(conn, role, _subject_key(user))
    _changed(request)
    _audit(request, "role.unassign", role.workspace, f"role:{role.id} {_subject_key(user)}", _caller(request)[0])
    return ok({})


@router.get("/roles/users/list", operation_id="roles.users.list")
def list_role_users(request: Request, args: Args = ARGS) -> JSONBody:
    """The users holding a role (workspace or server administrators)."""
    identity = request.app.state.identity.store
    with tracking_of(request).engine.connect() as conn:
        role = _role(request, conn, args.int("role_id", required=True), manage=True)
        assignments = store.list_assignments(conn, role_id=role.id)
    out = []
    for a in assignments:
        kind, _, name = a.subject.partition(":")
        user = identity.user_by_name(name) if kind in ("user", "service") else None
        if user is not None:
            out.append({"id": a.id, "user_id": user.id, "role_id": a.role_id})
    return ok({"assignments": out})


@router.get("/users/roles/list", operation_id="roles.users.roles")
def list_user_roles(request: Request, args: Args = ARGS) -> JSONBody:
    """A user's roles: one's own; another user's only in workspaces the caller administers."""
    username = args.str("username", required=True, allow_empty=False)
    subject, admin = _caller(request)
    own = subject.kind != "anonymous" and username == subject.name
    user = request.app.state.identity.store.user_by_name(username)
    if user is None:
        return ok({"roles": []})  # as for an account holding none: no account probing
    with tracking_of(request).engine.connect() as conn:
        held = store.list_assignments(conn, subject=_subject_key(user))
        found = [store.get_role(conn, a.role_id) for a in held]
        shown = [r for r in found if r is not None and (admin or own or _may_manage(request, r.workspace))]
        return ok({"roles": [_role_json(conn, r) for r in shown]})
