"""Read users, roles and permissions from MLflow's basic-auth database.

MLflow 3.17 keeps permissions as role grants (``role_permissions``); a user's own grants hang off a
synthetic role ``__user_<id>__``. Older auth databases (no ``role_permissions``) keep them in
``experiment_permissions`` and ``registered_model_permissions``; those are read instead. When both
exist, MLflow itself reads only the roles, so the legacy rows (a frozen pre-migration copy) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, select

from gateway.mlflow_import.source import DEFAULT_WORKSPACE, reflect

AUTH_TABLES = ("users", "roles", "role_permissions", "user_role_assignments", "experiment_permissions",
               "registered_model_permissions")
_SYNTHETIC_ROLE = re.compile(r"^__user_(\d+)__$")


@dataclass(frozen=True)
class SourceUser:
    """An MLflow user with its werkzeug password hash."""

    username: str
    password_hash: str | None
    is_admin: bool


@dataclass(frozen=True)
class SourceRole:
    """A named MLflow role (becomes an mlgate group) and the usernames assigned to it."""

    name: str
    workspace: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class SourcePermission:
    """One grant: ``holder`` is ``("user", username)`` or ``("role", role name)``."""

    holder: tuple[str, str]
    resource_type: str
    pattern: str
    permission: str
    workspace: str


@dataclass(frozen=True)
class AuthSnapshot:
    """Everything the import needs from the auth database."""

    users: list[SourceUser]
    roles: list[SourceRole]
    permissions: list[SourcePermission]


def read_auth(engine: Engine, option: str) -> AuthSnapshot:
    """Users, named roles and permissions of an MLflow basic-auth database."""
    tables = reflect(engine, AUTH_TABLES, ("users",), option)
    u = tables["users"]
    with engine.connect() as conn:
        rows = conn.execute(select(u.c.id, u.c.username, u.c.password_hash, u.c.is_admin).order_by(u.c.id)).all()
        names = {r.id: r.username for r in rows}
        users = [SourceUser(r.username, r.password_hash, bool(r.is_admin)) for r in rows]
        if "role_permissions" in tables:
            roles, permissions = _read_roles(conn, tables, names)
        else:
            roles, permissions = [], _read_legacy(conn, tables, names)
    return AuthSnapshot(users, roles, permissions)


def _read_roles(conn, tables, names: dict[int, str]) -> tuple[list[SourceRole], list[SourcePermission]]:
    r, rp, ura = tables["roles"], tables["role_permissions"], tables["user_role_assignments"]
    members: dict[int, list[str]] = {}
    for a in conn.execute(select(ura.c.role_id, ura.c.user_id).order_by(ura.c.id)):
        if a.user_id in names:
            members.setdefault(a.role_id, []).append(names[a.user_id])
    roles, holders = [], {}
    for role in conn.execute(select(r.c.id, r.c.name, r.c.workspace).order_by(r.c.id)):
        synthetic = _SYNTHETIC_ROLE.match(role.name)
        if synthetic:
            # The role's own assignment names its user; the id in the name is the fallback.
            owner = (members.get(role.id) or [names.get(int(synthetic.group(1)))])[0]
            holders[role.id] = (("user", owner) if owner else None, role.workspace)
        else:
            holders[role.id] = (("role", role.name), role.workspace)
            roles.append(SourceRole(role.name, role.workspace, tuple(members.get(role.id, []))))
    permissions = []
    for g in conn.execute(select(rp.c.role_id, rp.c.resource_type, rp.c.resource_pattern, rp.c.permission)
                          .order_by(rp.c.id)):
        holder, workspace = holders.get(g.role_id, (None, DEFAULT_WORKSPACE))
        if holder is not None:
            permissions.append(SourcePermission(holder, g.resource_type, g.resource_pattern, g.permission, workspace))
    return roles, permissions


def _read_legacy(conn, tables, names: dict[int, str]) -> list[SourcePermission]:
    out = []
    if "experiment_permissions" in tables:
        t = tables["experiment_permissions"]
        for g in conn.execute(select(t.c.experiment_id, t.c.user_id, t.c.permission).order_by(t.c.id)):
            if g.user_id in names:
                out.append(SourcePermission(("user", names[g.user_id]), "experiment", str(g.experiment_id),
                                            g.permission, DEFAULT_WORKSPACE))
    if "registered_model_permissions" in tables:
        t = tables["registered_model_permissions"]
        workspace = t.c.workspace if "workspace" in t.c else None
        columns = [t.c.name, t.c.user_id, t.c.permission] + ([workspace] if workspace is not None else [])
        for g in conn.execute(select(*columns).order_by(t.c.id)):
            if g.user_id in names:
                out.append(SourcePermission(("user", names[g.user_id]), "registered_model", g.name, g.permission,
                                            getattr(g, "workspace", None) or DEFAULT_WORKSPACE))
    return out
