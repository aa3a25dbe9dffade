"""Workspace roles (MLflow 3's roles API) as mlgate groups and grants, not a second permission system.

A role lives in one workspace. Its holders (users, or groups assigned the role) are members of that
workspace. In a request for that workspace, and only there, they carry the synthetic group
``role@<role id>`` (see :func:`role_group`); each role permission on experiments or registered models is
stored as an ordinary grant to that group (source ``role``), so the one ``decide()`` answers, the audit
cites ``api-grant:<id>`` and ``perms explain`` names the group, hence the role.

A ``workspace`` permission grants no resource: ``USE`` is membership (any role gives it), ``MANAGE``
makes the holders administrators of that workspace (they manage its roles and members).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)

from auth.grants import bump_generation, put_grant, revoke_grant
from auth.store import now_ms
from auth.tables import grants, metadata
from policies.file.workspaces import (
    ROLE_GROUP_PREFIX,
    ROLE_RESOURCE_PERMISSIONS,
    ROLE_RESOURCE_TYPES,
    role_name_problem,
    role_permission_problem,
    role_selector,
)
from policies.model import SubjectRef

# ROLE_GROUP_PREFIX: a group name no identity provider or account can hold: subject_of() drops it from a
# principal's groups and adds it only for a request in the role's workspace.

roles = Table(
    "auth_roles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace", String(63), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace", "name", name="uq_auth_roles_workspace_name"),
    # A deleted role's id is never given to a new one: ids key the role's grants (role@<id>).
    sqlite_autoincrement=True,
)

role_permissions = Table(
    "auth_role_permissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role_id", Integer, ForeignKey("auth_roles.id", ondelete="CASCADE"), nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_pattern", String(500), nullable=False),
    Column("permission", String(16), nullable=False),
    # The grant selector this permission compiles to ('' for a workspace permission).
    Column("selector", String(600), nullable=False),
    UniqueConstraint("role_id", "resource_type", "resource_pattern", name="uq_auth_role_permissions"),
    sqlite_autoincrement=True,
)

role_assignments = Table(
    "auth_role_assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role_id", Integer, ForeignKey("auth_roles.id", ondelete="CASCADE"), nullable=False),
    # "user:<name>" or "group:<name>".
    Column("subject", String(300), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("role_id", "subject", name="uq_auth_role_assignments"),
    sqlite_autoincrement=True,
)

# The rules are the policy file's (policies/file/workspaces.py), so the API and the file accept the same roles.
RESOURCE_TYPES = ROLE_RESOURCE_TYPES
_RESOURCE_PERMISSIONS = ROLE_RESOURCE_PERMISSIONS


class RoleError(ValueError):
    """A refused role operation; ``code`` is MLflow's error code."""

    def __init__(self, message: str, code: str = "INVALID_PARAMETER_VALUE"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Role:
    """One role, as MLflow's ``Role`` entity."""

    id: int
    workspace: str
    name: str
    description: str | None


@dataclass(frozen=True)
class RolePermission:
    """One permission of a role, as MLflow's ``RolePermission`` entity."""

    id: int
    role_id: int
    resource_type: str
    resource_pattern: str
    permission: str


@dataclass(frozen=True)
class Assignment:
    """A role held by a user or group."""

    id: int
    role_id: int
    subject: str


def role_group(role_id: int) -> str:
    """The synthetic group a role's holders carry in its workspace."""
    return f"{ROLE_GROUP_PREFIX}{role_id}"


def _check_permission(resource_type: str, pattern: str, permission: str) -> str:
    """The grant selector for a valid permission ('' for a workspace permission); RoleError naming the rule."""
    problem = role_permission_problem(resource_type, pattern, permission)
    if problem:
        raise RoleError(problem)
    return "" if resource_type == "workspace" else role_selector(resource_type, pattern)


def create_role(conn: Connection, workspace: str, name: str, description: str | None) -> Role:
    """A new role in ``workspace`` (RESOURCE_ALREADY_EXISTS for a name taken there)."""
    if (problem := role_name_problem(name)) is not None:
        raise RoleError(problem)
    if conn.execute(select(roles.c.id).where(roles.c.workspace == workspace, roles.c.name == name)).first():
        raise RoleError(f"Role '{name}' already exists in workspace '{workspace}'.", "RESOURCE_ALREADY_EXISTS")
    role_id = conn.execute(insert(roles).values(workspace=workspace, name=name, description=description,
                                                created_at=now_ms())).inserted_primary_key[0]
    bump_generation(conn)
    return Role(role_id, workspace, name, description)


# Ids are INTEGER columns: a number outside their range names nothing (PostgreSQL would refuse the query).
_MAX_ID = 2**31 - 1


def get_role(conn: Connection, role_id: int) -> Role | None:
    """The role with this id, or None."""
    if not 0 < role_id <= _MAX_ID:
        return None
    row = conn.execute(select(roles).where(roles.c.id == role_id)).first()
    return None if row is None else Role(row.id, row.workspace, row.name, row.description)


def list_roles(conn: Connection, workspace: str | None) -> list[Role]:
    """The roles of one workspace (every role when ``workspace`` is None), by id."""
    stmt = select(roles).order_by(roles.c.id)
    if workspace is not None:
        stmt = stmt.where(roles.c.workspace == workspace)
    return [Role(r.id, r.workspace, r.name, r.description) for r in conn.execute(stmt)]


def update_role(conn: Connection, role: Role, name: str | None, description: str | None) -> Role:
    """Rename or describe a role (its grants follow: they are keyed by id)."""
    values: dict = {}
    if name is not None and name != role.name:
        if conn.execute(select(roles.c.id).where(roles.c.workspace == role.workspace, roles.c.name == name)).first():
            raise RoleError(f"Role '{name}' already exists in workspace '{role.workspace}'.",
                            "RESOURCE_ALREADY_EXISTS")
        values["name"] = name
    if description is not None:
        values["description"] = description
    if values:
        conn.execute(update(roles).where(roles.c.id == role.id).values(**values))
    return get_role(conn, role.id)  # type: ignore[return-value]


def delete_role(conn: Connection, role: Role) -> None:
    """Remove a role, its permissions' grants and its assignments (one transaction)."""
    conn.execute(delete(grants).where(grants.c.subject == f"group:{role_group(role.id)}"))
    conn.execute(delete(role_assignments).where(role_assignments.c.role_id == role.id))
    conn.execute(delete(role_permissions).where(role_permissions.c.role_id == role.id))
    conn.execute(delete(roles).where(roles.c.id == role.id))
    bump_generation(conn)


def add_permission(conn: Connection, role: Role, resource_type: str, pattern: str, permission: str,
                   actor: str) -> RolePermission:
    """Give the role ``permission`` on ``resource_type`` resources matching ``pattern``."""
    selector = _check_permission(resource_type, pattern, permission)
    existing = conn.execute(select(role_permissions.c.id).where(
        role_permissions.c.role_id == role.id, role_permissions.c.resource_type == resource_type,
        role_permissions.c.resource_pattern == pattern)).first()
    if existing is not None:
        raise RoleError("The role already has a permission on this resource_type and resource_pattern; "
                        "update it instead.", "RESOURCE_ALREADY_EXISTS")
    if selector:
        put_grant(conn, f"group:{role_group(role.id)}", selector, _RESOURCE_PERMISSIONS[permission],
                  source="role", created_by=actor)
    permission_id = conn.execute(insert(role_permissions).values(
        role_id=role.id, resource_type=resource_type, resource_pattern=pattern, permission=permission,
        selector=selector)).inserted_primary_key[0]
    bump_generation(conn)
    return RolePermission(permission_id, role.id, resource_type, pattern, permission)


def get_permission(conn: Connection, permission_id: int) -> RolePermission | None:
    """One role permission by id, or None."""
    if not 0 < permission_id <= _MAX_ID:
        return None
    row = conn.execute(select(role_permissions).where(role_permissions.c.id == permission_id)).first()
    return None if row is None else RolePermission(row.id, row.role_id, row.resource_type, row.resource_pattern,
                                                   row.permission)


def list_permissions(conn: Connection, role_id: int) -> list[RolePermission]:
    """The permissions of one role, by id."""
    rows = conn.execute(select(role_permissions).where(role_permissions.c.role_id == role_id)
                        .order_by(role_permissions.c.id))
    return [RolePermission(r.id, r.role_id, r.resource_type, r.resource_pattern, r.permission) for r in rows]


def update_permission(conn: Connection, current: RolePermission, permission: str, actor: str) -> RolePermission:
    """Change a role permission's level (its grant is replaced in the same transaction)."""
    selector = _check_permission(current.resource_type, current.resource_pattern, permission)
    if selector:
        put_grant(conn, f"group:{role_group(current.role_id)}", selector, _RESOURCE_PERMISSIONS[permission],
                  source="role", created_by=actor)
    conn.execute(update(role_permissions).where(role_permissions.c.id == current.id).values(permission=permission))
    bump_generation(conn)
    return RolePermission(current.id, current.role_id, current.resource_type, current.resource_pattern, permission)


def remove_permission(conn: Connection, current: RolePermission) -> None:
    """Remove a role permission and its grant."""
    selector = _check_permission(current.resource_type, current.resource_pattern, current.permission)
    if selector:
        revoke_grant(conn, f"group:{role_group(current.role_id)}", selector)
    conn.execute(delete(role_permissions).where(role_permissions.c.id == current.id))
    bump_generation(conn)


def assign(conn: Connection, role: Role, subject: str) -> Assignment:
    """Give ``subject`` ("user:<name>" or "group:<name>") the role."""
    ref = SubjectRef.parse(subject)
    if ref.kind == "group" and ref.name.startswith(ROLE_GROUP_PREFIX):
        raise RoleError("A role cannot be assigned to another role's group.")
    row = conn.execute(select(role_assignments).where(role_assignments.c.role_id == role.id,
                                                      role_assignments.c.subject == ref.key)).first()
    if row is not None:
        return Assignment(row.id, row.role_id, row.subject)
    assignment_id = conn.execute(insert(role_assignments).values(role_id=role.id, subject=ref.key,
                                                                 created_at=now_ms())).inserted_primary_key[0]
    bump_generation(conn)
    return Assignment(assignment_id, role.id, ref.key)


def unassign(conn: Connection, role: Role, subject: str) -> bool:
    """Take the role from ``subject``; False when it did not hold it."""
    removed = conn.execute(delete(role_assignments).where(role_assignments.c.role_id == role.id,
                                                          role_assignments.c.subject == subject)).rowcount
    if removed:
        bump_generation(conn)
    return bool(removed)


def unassign_subjects(conn: Connection, subjects: list[str]) -> int:
    """Take every role from these subjects (an account or group being deleted), in the caller's transaction.

    Assignments name their subject, and names are reused: a later account or group of the same name
    must not hold the old one's roles.
    """
    if not subjects:
        return 0
    removed = conn.execute(delete(role_assignments).where(role_assignments.c.subject.in_(subjects))).rowcount
    if removed:
        bump_generation(conn)
    return removed


def list_assignments(conn: Connection, *, role_id: int | None = None,
                     subject: str | None = None) -> list[Assignment]:
    """Assignments of one role, or of one subject."""
    stmt = select(role_assignments).order_by(role_assignments.c.id)
    if role_id is not None:
        stmt = stmt.where(role_assignments.c.role_id == role_id)
    if subject is not None:
        stmt = stmt.where(role_assignments.c.subject == subject)
    return [Assignment(r.id, r.role_id, r.subject) for r in conn.execute(stmt)]


@dataclass(frozen=True)
class Memberships:
    """Every role assignment and workspace permission, read once per policy generation."""

    # role id -> workspace
    role_workspace: dict[int, str]
    # subject key ("user:alice", "group:team") -> role ids
    held: dict[str, frozenset[int]]
    # role ids whose holders administer their workspace
    admin_roles: frozenset[int]

    def roles_of(self, keys: list[str], workspace: str) -> frozenset[int]:
        """The roles of ``workspace`` that any of ``keys`` holds."""
        found: set[int] = set()
        for key in keys:
            found.update(r for r in self.held.get(key, ()) if self.role_workspace.get(r) == workspace)
        return frozenset(found)

    def workspaces_of(self, keys: list[str]) -> frozenset[str]:
        """Every workspace in which any of ``keys`` holds a role."""
        return frozenset(self.role_workspace[r] for key in keys for r in self.held.get(key, ())
                         if r in self.role_workspace)


def load_memberships(conn: Connection) -> Memberships:
    """Read every role, assignment and workspace permission (small tables, once per generation)."""
    role_workspace = {r.id: r.workspace for r in conn.execute(select(roles.c.id, roles.c.workspace))}
    held: dict[str, set[int]] = {}
    for row in conn.execute(select(role_assignments.c.subject, role_assignments.c.role_id)):
        held.setdefault(row.subject, set()).add(row.role_id)
    admin_roles = frozenset(conn.execute(select(role_permissions.c.role_id).where(
        role_permissions.c.resource_type == "workspace", role_permissions.c.permission == "MANAGE")).scalars())
    return Memberships(role_workspace, {k: frozenset(v) for k, v in held.items()}, admin_roles)
