"""The request's workspace: ``X-MLFLOW-WORKSPACE`` (absent: ``default``), validated, and decided by membership.

A header names the workspace a client wants; it never widens access. A workspace the caller is not a
member of answers exactly like one that does not exist (MLflow's RESOURCE_DOES_NOT_EXIST), so names
cannot be probed. Membership: server administrators are members of every workspace; every signed-in
principal is a member of ``default`` (what mlgate was before workspaces); any other workspace is reached
only through a role of that workspace held by the principal or one of its groups (auth/roles.py).

Workspaces and role assignments are read once per policy generation (every change bumps it), so a
request pays no query for them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from sqlalchemy import Engine, select

from auth.roles import ROLE_GROUP_PREFIX, Memberships, load_memberships, role_group, roles
from policies.compiled import CompiledPolicy
from policies.file.workspaces import workspace_name_problem
from policies.model import Resource, ResourceKind, Subject
from tracking.db.registry_tables import registered_models
from tracking.db.tables import experiments
from tracking.db.workspace_tables import workspaces
from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import DEFAULT_WORKSPACE

WORKSPACE_HEADER = "x-mlflow-workspace"
# The workspace chosen with the switcher of mlgate's own pages (gateway/ui/workspaces.py). A browser opening a
# page or following a link sends no header, so these pages read the choice from this cookie; nothing else does
# (an API call, MLflow's UI included, names its workspace in the header, and absent means 'default').
UI_WORKSPACE_COOKIE = "mlgate_workspace"
# mlgate's own pages of a workspace's content. Not the account and administration pages (they are not in a
# workspace, and the switcher itself must answer whatever the cookie says), not the stylesheet.
_NOT_IN_UI_WORKSPACE = ("ui.account", "ui.admin", "ui.static", "ui.workspace")


def named_workspace(request) -> str | None:
    """The workspace a request names: its ``X-MLFLOW-WORKSPACE`` header; on mlgate's own content pages
    (operation ids ``ui.*``, see :data:`_NOT_IN_UI_WORKSPACE`) without one, the switcher's cookie. Membership
    decides either, like any header."""
    header = request.headers.get(WORKSPACE_HEADER)
    if header is not None:
        return header
    operation_id = getattr(request.scope.get("route"), "operation_id", None) or ""
    if operation_id.startswith("ui.") and not operation_id.startswith(_NOT_IN_UI_WORKSPACE):
        return request.cookies.get(UI_WORKSPACE_COOKIE)
    return None


def check_workspace_name(name: str) -> None:
    """MLflow's validation of a workspace name: INVALID_PARAMETER_VALUE naming the rule."""
    if (problem := workspace_name_problem(name)) is not None:
        raise invalid_parameter(problem)


def workspace_missing(name: str) -> MlflowError:
    """The answer for a workspace that does not exist, or that the caller is not a member of."""
    return MlflowError(f"Workspace '{name}' not found.", "RESOURCE_DOES_NOT_EXIST")


def workspaces_disabled() -> MlflowError:
    """MLflow's answer when a client names a workspace and the server does not serve them."""
    return MlflowError("Workspace APIs are not available: workspaces are not enabled on this server "
                       "(start mlgate with --enable-workspaces).", "FEATURE_DISABLED")


@dataclass(frozen=True)
class WorkspaceView:
    """The workspaces and memberships of one policy generation."""

    names: frozenset[str]
    memberships: Memberships

    def keys_of(self, subject: Subject) -> list[str]:
        """The subject keys a role can be assigned to: the principal itself and its groups."""
        return [subject.key, *(f"group:{g}" for g in subject.groups)]

    def is_member(self, subject: Subject, workspace: str, *, admin: bool) -> bool:
        """Whether ``subject`` may work in ``workspace`` (it exists, and membership as the module says)."""
        if workspace not in self.names:
            return False
        if admin or workspace == DEFAULT_WORKSPACE:
            return True
        return bool(self.memberships.roles_of(self.keys_of(subject), workspace))

    def is_workspace_admin(self, subject: Subject, workspace: str) -> bool:
        """Whether ``subject`` holds a role with the workspace MANAGE permission in ``workspace``."""
        held = self.memberships.roles_of(self.keys_of(subject), workspace)
        return bool(held & self.memberships.admin_roles)

    def visible_workspaces(self, subject: Subject, *, admin: bool) -> list[str]:
        """The workspaces ``subject`` is a member of, by name."""
        return sorted(n for n in self.names if self.is_member(subject, n, admin=admin))

    def subject_in(self, subject: Subject, workspace: str) -> Subject:
        """``subject`` as decided in ``workspace``: its groups plus the role groups it holds there, and no
        other role group (an identity provider's group named like one is dropped); the other workspaces'
        role groups as its ``foreign_groups``."""
        groups = {g for g in subject.groups if not g.startswith(ROLE_GROUP_PREFIX)}
        held = {role_group(r) for r in self.memberships.roles_of(self.keys_of(subject), workspace)}
        groups.update(held)
        # Another workspace's roles promise names there only: their grants must not block a create here.
        foreign = frozenset(role_group(r) for r, w in self.memberships.role_workspace.items() if w != workspace)
        # Names are unique per workspace: outside 'default', only this workspace's roles grant by name.
        by_name = None if workspace == DEFAULT_WORKSPACE else frozenset(
            f"group:{role_group(r)}" for r, w in self.memberships.role_workspace.items() if w == workspace)
        if groups == subject.groups and foreign == subject.foreign_groups and by_name == subject.name_grants_from:
            return subject
        return replace(subject, groups=frozenset(groups), foreign_groups=foreign, name_grants_from=by_name)


class WorkspaceDirectory:
    """Workspaces and role memberships, re-read when the compiled policy changes (one per generation)."""

    def __init__(self, engine: Engine, *, enabled: bool):
        self.engine = engine
        self.enabled = enabled
        self._lock = threading.Lock()
        self._for: CompiledPolicy | None = None
        self._view: WorkspaceView | None = None

    def view(self, policy: CompiledPolicy) -> WorkspaceView:
        """The view matching ``policy`` (the holder's current compiled policy)."""
        with self._lock:
            if self._for is policy and self._view is not None:
                return self._view
        with self.engine.connect() as conn:
            names = frozenset(conn.execute(select(workspaces.c.name)).scalars())
            memberships = load_memberships(conn)
        fresh = WorkspaceView(names | {DEFAULT_WORKSPACE}, memberships)
        with self._lock:
            self._for, self._view = policy, fresh
        return fresh

    def requested(self, header: str | None) -> str:
        """The workspace a request names (validated), ``default`` when it names none."""
        name = (header or "").strip()
        if not name or name == DEFAULT_WORKSPACE:
            return DEFAULT_WORKSPACE
        if not self.enabled:
            raise workspaces_disabled()
        check_workspace_name(name)
        return name


def in_resource_workspace(conn, subject: Subject, resource: Resource) -> tuple[Subject, dict]:
    """``subject`` as a request in ``resource``'s workspace decides it (with the role groups it holds there),
    and that workspace with the names of those roles: what ``perms explain`` shows."""
    if resource.kind is ResourceKind.EXPERIMENT:
        stmt = select(experiments.c.workspace).where(experiments.c.experiment_id == int(resource.id))
    else:
        # A registered model's Resource id is its stable id (what grants name), not its name.
        stmt = select(registered_models.c.workspace).where(registered_models.c.model_id == resource.id)
    workspace = conn.execute(stmt).scalar() or DEFAULT_WORKSPACE
    view = WorkspaceView(frozenset({workspace}), load_memberships(conn))
    decided = view.subject_in(subject, workspace)
    held = sorted(view.memberships.roles_of(view.keys_of(subject), workspace))
    names = dict(conn.execute(select(roles.c.id, roles.c.name).where(roles.c.id.in_(held))).all()) if held else {}
    return decided, {"workspace": workspace,
                     "roles": [{"id": r, "name": names.get(r), "group": role_group(r)} for r in held]}


def explained_model_workspace(conn, name: str, asked: str | None) -> str:
    """Which workspace's model ``perms explain --model <name>`` means: registered model names are unique per
    workspace only. The one asked for; else 'default''s, else the only workspace holding that name (an
    administrator's tool may see every workspace); a name several other workspaces hold must be narrowed
    (400 naming them, which only administrators see)."""
    if asked is not None:
        return asked
    holders = sorted(conn.execute(select(registered_models.c.workspace)
                                  .where(registered_models.c.name == name)).scalars())
    if not holders or DEFAULT_WORKSPACE in holders:
        return DEFAULT_WORKSPACE
    if len(holders) == 1:
        return holders[0]
    raise invalid_parameter(f"Registered models named {name!r} exist in the workspaces {', '.join(holders)}: "
                            "name the workspace to explain.")


def explained_as_requested_in(explained: dict, asked: str | None, *, admin: bool) -> dict | None:
    """``perms explain --workspace``: the decision as a request naming workspace ``asked`` would get it.

    ``explained`` is decided in the resource's workspace (``in_resource_workspace``). A resource of another
    workspace is missing from ``asked`` (None: the caller answers not found); an account that is not a
    member of ``asked`` is denied, whatever its grants say (the request would be refused before any grant)."""
    if asked is None:
        return explained
    if explained["workspace"] != asked:
        return None
    if admin or asked == DEFAULT_WORKSPACE or explained["roles"]:
        return explained
    return {**explained, "allowed": False, "rule": None,
            "reason": f"{explained['subject']} is not a member of workspace {asked!r}"}
