"""The layout's workspace menu: the signed-in caller's workspaces, the one mlgate's pages are in (the switcher's
cookie, if the caller is a member of it; otherwise ``default``), and those the caller administers. Membership
and administration are the roles API's answers (:mod:`gateway.routes.workspaces`), not decided here."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.routes import workspaces as workspace_api
from gateway.workspaces import UI_WORKSPACE_COOKIE
from tracking.scope import DEFAULT_WORKSPACE


@dataclass(frozen=True)
class WorkspaceMenu:
    """What the layout shows of workspaces: the caller's, the one the pages are in, those they administer."""

    workspaces: tuple[str, ...]
    current: str
    administered: tuple[str, ...]


def workspace_menu(request: Request) -> WorkspaceMenu | None:
    """The layout's workspace menu for the signed-in caller; None when workspaces are off or nobody is signed in."""
    principal = getattr(request.state, "principal", None)
    authorizer = getattr(request.app.state, "authorizer", None)
    if principal is None or authorizer is None or not authorizer.workspaces.enabled:
        return None
    subject, admin = workspace_api._caller(request)
    view = workspace_api._view(request)
    mine = view.visible_workspaces(subject, admin=admin)
    chosen = request.cookies.get(UI_WORKSPACE_COOKIE) or DEFAULT_WORKSPACE
    current = chosen if chosen in mine else DEFAULT_WORKSPACE
    administered = tuple(w for w in mine if admin or view.is_workspace_admin(subject, w))
    return WorkspaceMenu(tuple(mine), current, administered)
