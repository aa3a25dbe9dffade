"""Stored groups and API grants as a policy file: export them, plan the changes a file implies, apply them.

The file is the desired state of ``access.groups`` and ``access.grants``: groups and API grants the file
does not name are removed. Creators' MANAGE grants (source ``owner``) are neither exported nor touched by
default: they name this server's resource ids, and a file written by hand (or exported before) must not
strip every creator of their experiments. With ``owner_grants`` the file is the desired state of owner
grants too: they are exported, an owner grant the file keeps stays an owner grant, and one it leaves out
is removed. Applying runs in the caller's one transaction, so it is all-or-nothing.

Workspaces (``workspaces:``, ``workspace_templates:``): a file without them leaves the stored workspaces and
roles alone. With them, the file is the desired set of workspaces (``default`` always stays): a workspace it
does not name is deleted with its roles, which is refused while it holds experiments or models. A declared
workspace with ``roles`` has exactly those roles, permissions and members (stored with auth/roles.py, so a
declared role is a ``role@<id>`` group with grants, like one made through the roles API); one without
``roles`` keeps the roles its workspace administrators made. Templates are expanded at plan time against the
groups that exist then (and the groups the file declares).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from auth import roles as role_store
from auth.grants import bump_generation, list_grants, put_grant, revoke_grant
from auth.store import now_ms
from auth.tables import users
from gateway.grant_selectors import UnknownResource, experiment_names, shown_rows, stored_selector
from gateway.routes import admin_store
from policies.file import PolicyFile, PolicyFileError, policy_from_data
from policies.file.workspaces import DEFAULT_WORKSPACE, RoleEntry, WorkspaceEntry, expand_workspaces
from tracking.db.registry_tables import registered_models
from tracking.db.tables import experiments
from tracking.db.workspace_tables import workspaces as workspace_rows


@dataclass(frozen=True)
class Change:
    """One step of a plan: ``op`` is ``add``, ``remove`` or ``change``; ``kind`` group, member or grant."""

    op: str
    kind: str
    group: str | None = None
    member: str | None = None
    subject: str | None = None
    resource: str | None = None
    permission: str | None = None
    old_permission: str | None = None
    source: str | None = None  # "owner" for a creator's grant (planned only with owner_grants)
    expires_at: int | None = None  # epoch ms: the grant expires then
    workspace: str | None = None  # kinds workspace, role, role-permission, role-member
    role: str | None = None
    resource_type: str | None = None
    resource_pattern: str | None = None
    description: str | None = None

    def to_json(self) -> dict:
        """The change with only the fields its kind uses."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _managed(row, owner_grants: bool) -> bool:
    # Break-glass grants are emergency access outside the reviewed policy: neither exported nor removed by it.
    return not row.break_glass and (row.source == "api" or (owner_grants and row.source == "owner"))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _exported(row) -> dict:
    entry = {"principal": row.subject, "resource": row.resource, "permission": row.permission}
    if row.expires_at is not None:
        entry["expires_at"] = _iso(row.expires_at)
    return entry


def export_names(conn: Connection, access: dict) -> dict[str, str]:
    """The name of each experiment an exported grant names by id (``{"experiment:1": "demo"}``), for comments."""
    return experiment_names(conn, [g["resource"] for g in access["grants"]])


def export_access(conn: Connection, *, owner_grants: bool = False) -> dict:
    """The ``access`` section (groups and API grants; owner grants too if asked) in a stable order; grants that
    have expired are left out, expiring ones carry ``expires_at``."""
    groups = {g["name"]: sorted(g["members"]) for g in admin_store.list_groups(conn)}
    now = now_ms()
    grants = sorted((_exported(r) for r in shown_rows(conn, list_grants(conn))
                     if _managed(r, owner_grants) and (r.expires_at is None or r.expires_at > now)),
                    key=lambda g: (g["principal"], g["resource"]))
    return {"groups": groups, "grants": grants}


def _member_key(text: str) -> str:
    return text if text.startswith(("user:", "service:")) else f"user:{text}"


def _shown_member(key: str) -> str:
    return key.removeprefix("user:")


def desired_access(access: object) -> tuple[dict[str, set[str]], dict[tuple[str, str], tuple[str, int | None]]]:
    """Validate an ``access`` section as the policy loader does (no variables substituted on the server)."""
    if not isinstance(access, dict):
        raise PolicyFileError(["access: must be a mapping with groups and grants"])
    extra = sorted(set(access) - {"groups", "grants"})
    problems = [f"access.{key}: only groups and grants can be stored on a server; put {key} in the server's "
                "--policy file" for key in extra]
    try:
        parsed = policy_from_data({"version": 1, "access": access}, environ={}).access
    except PolicyFileError as exc:
        raise PolicyFileError(problems + exc.problems) from None
    if problems:
        raise PolicyFileError(problems)
    groups = {name: {_member_key(m) for m in members} for name, members in parsed.groups.items()}
    grants = {(g.principal, g.resource): (g.permission, None if g.expires_at is None
                                          else int(g.expires_at.timestamp() * 1000)) for g in parsed.grants}
    return groups, grants


def plan(conn: Connection, access: object, *, owner_grants: bool = False, workspaces: object = None,
         templates: object = None) -> list[Change]:
    """The changes that make the stored groups and API grants (and owner grants, with ``owner_grants``)
    equal to ``access``, and the workspaces and roles equal to ``workspaces`` and ``templates`` when given;
    PolicyFileError lists every problem (invalid entries, unknown members or subjects)."""
    problems: list[str] = []
    desired: dict[str, WorkspaceEntry] | None = None
    try:
        groups, grants = desired_access(access)
    except PolicyFileError as exc:
        problems += exc.problems
    try:
        _, desired = desired_workspaces(conn, access, workspaces, templates)
    except PolicyFileError as exc:
        problems += [p for p in exc.problems if not p.startswith("access")]
    if problems:
        raise PolicyFileError(problems)
    accounts = {f"{'service' if r.kind == 'service' else 'user'}:{r.username}"
                for r in conn.execute(select(users.c.username, users.c.kind))}
    try:
        workspace_changes = [] if desired is None else plan_workspaces(conn, desired, accounts)
    except PolicyFileError as exc:
        problems += exc.problems
    problems += [f"access.groups.{name}: no account {_shown_member(m)} exists"
                for name, members in sorted(groups.items()) for m in sorted(members) if m not in accounts]
    now = now_ms()
    for i, ((subject, resource), (_, expires_at)) in enumerate(grants.items()):
        if expires_at is not None and expires_at <= now:
            problems.append(f"access.grants[{i}].expires_at: already past")
        kind, _, name = subject.partition(":")
        if kind == "group" and name not in groups:
            problems.append(f"access.grants[{i}].principal: group {name} is not in access.groups")
        elif kind != "group" and subject not in accounts:
            problems.append(f"access.grants[{i}].principal: no account {subject} exists")
        try:
            stored_selector(conn, resource, granting=True)  # one model: its stable id; one experiment: it exists
        except UnknownResource as exc:
            problems.append(f"access.grants[{i}].resource: {exc}")
    if problems:
        raise PolicyFileError(problems)

    current_groups = {g["name"]: {_member_key(m) for m in g["members"]} for g in admin_store.list_groups(conn)}
    stored = [r for r in shown_rows(conn, list_grants(conn)) if _managed(r, owner_grants)]
    current_grants = {(r.subject, r.resource): (r.permission, r.expires_at) for r in stored}
    owners = {(r.subject, r.resource) for r in stored if r.source == "owner"}
    changes = [Change("add", "group", group=name) for name in sorted(set(groups) - set(current_groups))]
    for name in sorted(groups):
        have = current_groups.get(name, set())
        changes += [Change("add", "member", group=name, member=_shown_member(m)) for m in sorted(groups[name] - have)]
        changes += [Change("remove", "member", group=name, member=_shown_member(m))
                    for m in sorted(have - groups[name])]
    for key in sorted(grants):
        permission, expires_at = grants[key]
        if key not in current_grants:
            changes.append(Change("add", "grant", subject=key[0], resource=key[1], permission=permission,
                                  expires_at=expires_at))
        elif current_grants[key] != grants[key]:
            changes.append(Change("change", "grant", subject=key[0], resource=key[1], permission=permission,
                                  old_permission=current_grants[key][0], source="owner" if key in owners else None,
                                  expires_at=expires_at))
    changes += [Change("remove", "grant", subject=k[0], resource=k[1], permission=current_grants[k][0],
                       source="owner" if k in owners else None)
                for k in sorted(set(current_grants) - set(grants))]
    changes += [Change("remove", "group", group=name) for name in sorted(set(current_groups) - set(groups))]
    return changes + workspace_changes


def apply(conn: Connection, changes: list[Change], actor: str) -> list[int]:
    """Carry out a plan inside the caller's transaction; returns ids of accounts whose groups changed."""
    touched: list[int] = []
    for change in changes:
        if change.workspace is not None:
            apply_workspace_change(conn, change, actor)
        elif change.kind == "group" and change.op == "add":
            admin_store.create_group(conn, change.group)
        elif change.kind == "member":
            username = _member_key(change.member).partition(":")[2]
            step = admin_store.add_member if change.op == "add" else admin_store.remove_member
            touched.append(step(conn, change.group, username))
        elif change.kind == "grant" and change.op in ("add", "change"):
            put_grant(conn, change.subject, stored_selector(conn, change.resource), change.permission,
                      created_by=actor, expires_at=change.expires_at)
        elif change.kind == "grant":
            revoke_grant(conn, change.subject, stored_selector(conn, change.resource))
        else:
            touched.extend(admin_store.delete_group(conn, change.group))
    return touched


# --- workspaces and their roles -------------------------------------------------------------------------


def _member_text(key: str) -> str:
    return key.removeprefix("user:")


def export_workspaces(conn: Connection) -> dict:
    """Every workspace with its roles, permissions and members, as a policy file's ``workspaces:`` section.

    ``default`` is listed only when it has a role; every listed workspace lists its roles (so applying the
    export back keeps exactly them).
    """
    out: dict[str, dict] = {}
    roles_of: dict[str, dict] = {}
    for role in role_store.list_roles(conn, None):
        entry: dict = {}
        if role.description:
            entry["description"] = role.description
        entry["permissions"] = [{"resource_type": p.resource_type, "resource_pattern": p.resource_pattern,
                                 "permission": p.permission} for p in role_store.list_permissions(conn, role.id)]
        entry["members"] = sorted(_member_text(a.subject) for a in role_store.list_assignments(conn, role_id=role.id))
        roles_of.setdefault(role.workspace, {})[role.name] = entry
    for row in conn.execute(select(workspace_rows).order_by(workspace_rows.c.name)):
        if row.name == DEFAULT_WORKSPACE and row.name not in roles_of:
            continue
        entry = {"description": row.description} if row.description else {}
        entry["roles"] = roles_of.get(row.name, {})
        out[row.name] = entry
    return out


def desired_workspaces(conn: Connection, access: object, workspaces: object,
                       templates: object) -> tuple[PolicyFile | None, dict[str, WorkspaceEntry] | None]:
    """The validated document and the workspaces it wants (templates expanded against the groups that exist
    and the ones it declares); (None, None) when it names no workspaces."""
    if workspaces is None and not templates:
        return None, None
    data: dict = {"version": 1, "access": access if isinstance(access, dict) else {}}
    if workspaces is not None:
        data["workspaces"] = workspaces
    if templates:
        data["workspace_templates"] = templates
    document = policy_from_data(data, environ={})
    groups = {g["name"] for g in admin_store.list_groups(conn)} | set(document.access.groups)
    return document, expand_workspaces(document.workspaces, document.workspace_templates, groups)


def _current_roles(conn: Connection, workspace: str) -> dict[str, dict]:
    out = {}
    for role in role_store.list_roles(conn, workspace):
        out[role.name] = {
            "role": role,
            "permissions": {(p.resource_type, p.resource_pattern): p
                            for p in role_store.list_permissions(conn, role.id)},
            "members": {a.subject for a in role_store.list_assignments(conn, role_id=role.id)},
        }
    return out


def _role_changes(workspace: str, name: str, desired: RoleEntry, current: dict | None) -> list[Change]:
    changes = []
    if current is None:
        changes.append(Change("add", "role", workspace=workspace, role=name, description=desired.description))
        have_permissions, have_members = {}, set()
    else:
        if desired.description is not None and desired.description != (current["role"].description or None):
            changes.append(Change("change", "role", workspace=workspace, role=name, description=desired.description))
        have_permissions, have_members = current["permissions"], current["members"]
    want = {(p.resource_type, p.resource_pattern): p.permission for p in desired.permissions}
    for key in sorted(want):
        have = have_permissions.get(key)
        if have is None or have.permission != want[key]:
            changes.append(Change("add" if have is None else "change", "role-permission", workspace=workspace,
                                  role=name, resource_type=key[0], resource_pattern=key[1], permission=want[key],
                                  old_permission=None if have is None else have.permission))
    changes += [Change("remove", "role-permission", workspace=workspace, role=name, resource_type=key[0],
                       resource_pattern=key[1], permission=have_permissions[key].permission)
                for key in sorted(set(have_permissions) - set(want))]
    members = set(desired.members)
    changes += [Change("add", "role-member", workspace=workspace, role=name, member=_member_text(m))
                for m in sorted(members - have_members)]
    changes += [Change("remove", "role-member", workspace=workspace, role=name, member=_member_text(m))
                for m in sorted(have_members - members)]
    return changes


def held_objects(conn: Connection, workspace: str) -> int:
    used = conn.execute(select(func.count()).select_from(experiments)
                        .where(experiments.c.workspace == workspace)).scalar_one()
    return used + conn.execute(select(func.count()).select_from(registered_models)
                               .where(registered_models.c.workspace == workspace)).scalar_one()


def plan_workspaces(conn: Connection, desired: dict[str, WorkspaceEntry], accounts: set[str]) -> list[Change]:
    """The changes that make the stored workspaces and roles equal to ``desired``; PolicyFileError lists every
    problem (a member account that does not exist, a workspace to delete that still holds objects)."""
    problems = []
    for name, workspace in sorted(desired.items()):
        for role_name, role in sorted((workspace.roles or {}).items()):
            problems += [f"workspaces.{name}.roles.{role_name}.members: no account {_member_text(m)} exists"
                         for m in role.members if not m.startswith("group:") and m not in accounts]
    current = {r.name: r.description for r in conn.execute(select(workspace_rows))}
    removed = sorted(set(current) - set(desired) - {DEFAULT_WORKSPACE})
    for name in removed:
        if (held := held_objects(conn, name)):
            problems.append(f"workspaces: workspace {name} is not in the file but holds {held} experiments or "
                            "models (deleted ones included); declare it, or delete them first")
    if problems:
        raise PolicyFileError(problems)
    changes: list[Change] = []
    for name in sorted(desired):
        entry = desired[name]
        if name not in current and name != DEFAULT_WORKSPACE:
            changes.append(Change("add", "workspace", workspace=name, description=entry.description))
        elif entry.description is not None and entry.description != (current.get(name) or None):
            changes.append(Change("change", "workspace", workspace=name, description=entry.description))
        if entry.roles is None:
            continue
        have = _current_roles(conn, name) if name in current else {}
        for role_name in sorted(entry.roles):
            changes += _role_changes(name, role_name, entry.roles[role_name], have.get(role_name))
        changes += [Change("remove", "role", workspace=name, role=r) for r in sorted(set(have) - set(entry.roles))]
    for name in removed:
        changes += [Change("remove", "role", workspace=name, role=r.name) for r in role_store.list_roles(conn, name)]
        changes.append(Change("remove", "workspace", workspace=name))
    return changes


def _role_named(conn: Connection, workspace: str, name: str) -> role_store.Role:
    found = next((r for r in role_store.list_roles(conn, workspace) if r.name == name), None)
    if found is None:  # planned in this transaction: cannot happen unless the plan is stale
        raise PolicyFileError([f"workspaces.{workspace}.roles.{name}: the role no longer exists; plan again"])
    return found


def apply_workspace_change(conn: Connection, change: Change, actor: str) -> None:
    """Carry out one workspace, role, role-permission or role-member change in the caller's transaction."""
    kind, op = change.kind, change.op
    if kind == "workspace" and op == "add":
        now = now_ms()
        conn.execute(insert(workspace_rows).values(name=change.workspace, description=change.description,
                                                   creation_time=now, last_update_time=now))
        bump_generation(conn)
    elif kind == "workspace" and op == "change":
        conn.execute(update(workspace_rows).where(workspace_rows.c.name == change.workspace)
                     .values(description=change.description, last_update_time=now_ms()))
    elif kind == "workspace":
        for role in role_store.list_roles(conn, change.workspace):
            role_store.delete_role(conn, role)
        conn.execute(delete(workspace_rows).where(workspace_rows.c.name == change.workspace))
        bump_generation(conn)
    elif kind == "role" and op == "add":
        role_store.create_role(conn, change.workspace, change.role, change.description)
    elif kind == "role" and op == "change":
        role_store.update_role(conn, _role_named(conn, change.workspace, change.role), None, change.description)
    elif kind == "role":
        role_store.delete_role(conn, _role_named(conn, change.workspace, change.role))
    elif kind == "role-permission":
        role = _role_named(conn, change.workspace, change.role)
        current = next((p for p in role_store.list_permissions(conn, role.id)
                        if (p.resource_type, p.resource_pattern) == (change.resource_type, change.resource_pattern)),
                       None)
        if op == "add":
            role_store.add_permission(conn, role, change.resource_type, change.resource_pattern, change.permission,
                                      actor)
        elif op == "change" and current is not None:
            role_store.update_permission(conn, current, change.permission, actor)
        elif current is not None:
            role_store.remove_permission(conn, current)
    elif kind == "role-member":
        role = _role_named(conn, change.workspace, change.role)
        subject = _member_key(change.member) if not change.member.startswith("group:") else change.member
        if op == "add":
            role_store.assign(conn, role, subject)
        else:
            role_store.unassign(conn, role, subject)
