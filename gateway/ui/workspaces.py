"""Workspaces in mlgate's own pages: the switcher, and the pages where a workspace's administrators manage its
roles and members.

- **Switcher** (``POST /account/workspace``): the signed-in person picks one of their workspaces; it is kept in
  a cookie that only the content pages read (:func:`gateway.workspaces.named_workspace`), and membership
  decides it on every page like the ``X-MLFLOW-WORKSPACE`` header (a workspace one is not a member of is
  missing). Offered when the person is in more than one workspace.
- **Workspace administration** (``/admin/workspaces[/<name>]``): for server administrators and the holders of
  a role with the ``workspace`` MANAGE permission, for that workspace only. Every change calls the roles API's
  own handler (:mod:`gateway.routes.workspaces`) with the form's fields, so the rules, the messages, the
  audit records and the cross-process invalidation are that code's. A workspace the caller does not
  administer (or a role of another workspace posted to this one's page) answers "not found" and is audited
  as a denial. Forms are CSRF-checked (:mod:`gateway.ui.forms`); success redirects (303).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth import roles as role_store
from auth.audit import REQUEST_WORKSPACE
from gateway.routes import workspaces as workspace_api
from gateway.ui.forms import FORM
from gateway.ui.render import page
from gateway.ui.workspace_menu import workspace_menu
from gateway.workspaces import UI_WORKSPACE_COOKIE, workspace_missing, workspaces_disabled
from policies.file.workspaces import workspace_name_problem
from tracking.api.body import Args
from tracking.errors import MlflowError
from tracking.scope import DEFAULT_WORKSPACE
from tracking.services import tracking_of

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
RESOURCE_TYPES = ("experiment", "registered_model", "prompt", "workspace")
ROLE_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
DONE = {
    "role": "The role was created.", "role_deleted": "The role was deleted.",
    "permission": "The permission was added.", "permission_removed": "The permission was removed.",
    "assigned": "The role was given.", "unassigned": "The role was taken back.",
}


def _refuse(request: Request, name: str, reason: str) -> MlflowError:
    """Audit the refusal and answer as for a workspace that does not exist.

    The record's workspace is the one asked for, as the authorizer records a refused header: an administrator
    finds the attempts on their workspace with ``mlgate audit list --workspace <name>``."""
    REQUEST_WORKSPACE.set(name[:63])
    request.app.state.authorizer.audit_denial(
        request, getattr(request.scope.get("route"), "operation_id", None), workspace_api._caller(request)[0], None,
        f"{reason} [workspace: {name[:63]}]")
    return workspace_missing(name[:63])


# --- the switcher -------------------------------------------------------------------------------------------
@router.post("/account/workspace", operation_id="ui.account.workspace")
def switch_workspace(request: Request, fields: dict = FORM) -> Response:
    """Work in another of one's workspaces from now on (mlgate's pages); back to the experiments list."""
    name = fields.get("workspace", "").strip()
    menu = workspace_menu(request)
    if menu is None:
        raise workspaces_disabled()
    if name not in menu.workspaces:
        raise _refuse(request, name, "switch to a workspace the caller is not a member of (or that does not exist)")
    response = RedirectResponse("/experiments", status_code=303, headers=NO_STORE)
    sessions = request.app.state.identity.sessions
    if name == DEFAULT_WORKSPACE:
        response.delete_cookie(UI_WORKSPACE_COOKIE, path="/", secure=sessions.secure, httponly=True, samesite="lax")
    else:
        # Lax, like the session: following a link from another site keeps the choice; a cross-site form cannot
        # set it (this route is a CSRF-checked POST).
        response.set_cookie(UI_WORKSPACE_COOKIE, name, path="/", secure=sessions.secure, httponly=True,
                            samesite="lax")
    return response


# --- workspace administration ---------------------------------------------------------------------------------
def _administered(request: Request, name: str) -> str:
    """``name`` if the caller administers that workspace (server administrator, or MANAGE there); else the
    audited "not found"."""
    if name != DEFAULT_WORKSPACE and workspace_name_problem(name) is not None:
        raise _refuse(request, name, "not a workspace name")
    menu = workspace_menu(request)
    if menu is None:
        raise workspaces_disabled()
    if name not in menu.administered:
        raise _refuse(request, name, "manage a workspace the caller does not administer")
    return name


def _role_in(request: Request, name: str, fields: dict) -> int:
    """The posted role id, if it is a role of workspace ``name`` (another workspace's: audited "not found")."""
    text = fields.get("role_id", "")
    role_id = int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None
    with tracking_of(request).engine.connect() as conn:
        role = role_store.get_role(conn, role_id) if role_id is not None else None
    if role is None or role.workspace != name:
        request.app.state.authorizer.audit_denial(
            request, getattr(request.scope.get("route"), "operation_id", None), workspace_api._caller(request)[0],
            None, f"role {text[:20]!r} is not a role of workspace {name!r} [workspace: {name}]")
        raise MlflowError(f"Role with id={text[:20]} not found.", "RESOURCE_DOES_NOT_EXIST")
    return role_id


def _payload(response: Response) -> dict:
    """The JSON a roles API handler answered (they raise on refusals)."""
    return json.loads(response.body)


def _workspace_page(request: Request, name: str, error: str | None = None, status: int = 200) -> Response:
    workspace = _payload(workspace_api.get_workspace(request, name))["workspace"]
    roles = _payload(workspace_api.list_roles(request, Args({"workspace": name})))["roles"]
    with tracking_of(request).engine.connect() as conn:
        for role in roles:
            role["members"] = [a.subject for a in role_store.list_assignments(conn, role_id=role["id"])]
    done = None if error else DONE.get(request.query_params.get("done", ""))
    return page(request, "workspace_admin.html", title=f"Workspace {name}", section="workspaces",
                workspace=workspace, roles=roles, resource_types=RESOURCE_TYPES, role_permissions=ROLE_PERMISSIONS,
                error=error, done=done, status=status if error else 200, headers=NO_STORE)


def _change(request: Request, name: str, action: Callable[[], object], done: str) -> Response:
    """Run one change through the roles API's handler; redirect (303) with a fixed message, or show the refusal."""
    try:
        action()
    except MlflowError as exc:
        return _workspace_page(request, name, exc.message, exc.status)
    return RedirectResponse(f"/admin/workspaces/{quote(name)}?done={done}", status_code=303, headers=NO_STORE)


@router.get("/admin/workspaces", operation_id="ui.workspace_admin.list")
def administered_workspaces(request: Request) -> Response:
    """The workspaces the caller administers."""
    menu = workspace_menu(request)
    if menu is None:
        raise workspaces_disabled()
    return page(request, "workspace_admin_list.html", title="Workspaces you administer", section="workspaces",
                administered=menu.administered, headers=NO_STORE)


@router.get("/admin/workspaces/{name}", operation_id="ui.workspace_admin.page")
def workspace_page(request: Request, name: str) -> Response:
    """One workspace's roles, their permissions and members, with the forms to change them."""
    return _workspace_page(request, _administered(request, name))


@router.post("/admin/workspaces/{name}/roles/create", operation_id="ui.workspace_admin.role_create")
def create_role(request: Request, name: str, fields: dict = FORM) -> Response:
    """A new role in this workspace."""
    name = _administered(request, name)
    args = Args({"workspace": name, "name": fields.get("name", "").strip(),
                 "description": fields.get("description", "").strip() or None})
    return _change(request, name, lambda: workspace_api.create_role(request, args), "role")


@router.post("/admin/workspaces/{name}/roles/delete", operation_id="ui.workspace_admin.role_delete")
def delete_role(request: Request, name: str, fields: dict = FORM) -> Response:
    """Delete a role of this workspace (its permissions and assignments go with it)."""
    name = _administered(request, name)
    args = Args({"role_id": _role_in(request, name, fields)})
    return _change(request, name, lambda: workspace_api.delete_role(request, args), "role_deleted")


@router.post("/admin/workspaces/{name}/permissions/add", operation_id="ui.workspace_admin.permission_add")
def add_permission(request: Request, name: str, fields: dict = FORM) -> Response:
    """Give a role of this workspace a permission."""
    name = _administered(request, name)
    args = Args({"role_id": _role_in(request, name, fields),
                 **{k: fields.get(k, "").strip() for k in ("resource_type", "resource_pattern", "permission")}})
    return _change(request, name, lambda: workspace_api.add_role_permission(request, args), "permission")


@router.post("/admin/workspaces/{name}/permissions/remove", operation_id="ui.workspace_admin.permission_remove")
def remove_permission(request: Request, name: str, fields: dict = FORM) -> Response:
    """Take a permission from a role of this workspace."""
    name = _administered(request, name)
    role_id = _role_in(request, name, fields)
    text = fields.get("role_permission_id", "")
    permission_id = int(text) if text.isascii() and text.isdigit() and len(text) < 12 else -1
    with tracking_of(request).engine.connect() as conn:
        found = role_store.get_permission(conn, permission_id)
    if found is None or found.role_id != role_id:  # a permission of another role: missing, as the API says
        return _workspace_page(request, name, f"Role permission with id={permission_id} not found.", 404)
    args = Args({"role_permission_id": permission_id})
    return _change(request, name, lambda: workspace_api.remove_role_permission(request, args), "permission_removed")


@router.post("/admin/workspaces/{name}/members/assign", operation_id="ui.workspace_admin.assign")
def assign(request: Request, name: str, fields: dict = FORM) -> Response:
    """Give an account a role of this workspace (and so membership)."""
    name = _administered(request, name)
    args = Args({"role_id": _role_in(request, name, fields), "username": fields.get("username", "").strip()})
    return _change(request, name, lambda: workspace_api.assign_role(request, args), "assigned")


@router.post("/admin/workspaces/{name}/members/unassign", operation_id="ui.workspace_admin.unassign")
def unassign(request: Request, name: str, fields: dict = FORM) -> Response:
    """Take a role of this workspace from an account."""
    name = _administered(request, name)
    args = Args({"role_id": _role_in(request, name, fields), "username": fields.get("username", "").strip()})
    return _change(request, name, lambda: workspace_api.unassign_role(request, args), "unassigned")
