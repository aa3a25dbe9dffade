"""Create MLflow's users (werkzeug hashes kept: they verify at login and become bcrypt then), named roles
as groups, and permissions as grants, through auth's store and grant functions.

Users are matched by username: an existing mlgate account is never changed (its password, admin flag
and grants stay as they are). Permissions never widen access: ``USE`` (read plus using gateway
resources in MLflow) becomes READ, and kinds mlgate cannot express are skipped with the reason. A
DENY cannot be carried over as a stored grant, so each one is reported in the notes to be re-created
as a deny in the policy file.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from auth.accounts import validate_username
from auth.errors import AlreadyExists, AuthError
from auth.grants import list_grants, put_grant
from auth.passwords import is_werkzeug_hash
from auth.store import IdentityStore
from auth.tables import group_members, groups, users
from gateway.grant_selectors import UnknownResource, stored_selector
from gateway.mlflow_import.auth_source import AuthSnapshot, SourcePermission
from gateway.mlflow_import.source import DEFAULT_WORKSPACE
from gateway.mlflow_import.tally import Tally
from gateway.routes.admin_store import check_group_name

_PERMISSIONS = {"READ": "READ", "USE": "READ", "EDIT": "EDIT", "MANAGE": "MANAGE", "NO_PERMISSIONS": "NO_PERMISSIONS"}
_RESOURCE_KINDS = {"experiment": "experiment", "registered_model": "model", "prompt": "model"}


def copy_users(snapshot: AuthSnapshot, store: IdentityStore, tally: Tally, advance: Callable[[int], None]) -> None:
    """Create each MLflow user mlgate does not have yet, with its MLflow password hash."""
    for user in snapshot.users:
        advance(1)
        try:
            validate_username(user.username)
        except AuthError:
            tally.skipped("users", "usernames mlgate refuses (':', control characters, too long)")
            continue
        if store.user_by_name(user.username) is not None:
            tally.present("users")
            continue
        if not user.password_hash or not is_werkzeug_hash(user.password_hash):
            tally.skipped("users", "password hashes in a format mlgate cannot verify")
            continue
        try:
            store.create_user(user.username, user.password_hash, is_admin=user.is_admin)
        except AlreadyExists:
            tally.present("users")
            continue
        tally.imported("users")
        if user.is_admin:
            tally.note(f"user {user.username!r} is an administrator in MLflow and now in mlgate.")


def copy_roles(snapshot: AuthSnapshot, store: IdentityStore, tally: Tally) -> None:
    """Each named role of the default workspace becomes a group with the role's members."""
    for role in snapshot.roles:
        if role.workspace != DEFAULT_WORKSPACE:
            tally.skipped("groups", "roles of MLflow workspaces other than 'default'")
            continue
        try:
            check_group_name(role.name)
        except AuthError:
            tally.skipped("groups", "role names that are not valid group names")
            continue
        with store.engine.connect() as conn:
            group_id = conn.execute(select(groups.c.id).where(groups.c.name == role.name)).scalar()
        members = _members(store, group_id) if group_id is not None else set()
        if group_id is None:
            tally.imported("groups")
        else:
            tally.present("groups")
        for username in role.members:
            user = store.user_by_name(username)
            if user is None:
                tally.skipped("group members", "members whose user was not imported")
            elif username in members:
                tally.present("group members")
            else:
                store.add_to_group(user.id, role.name)
                tally.imported("group members")


def _members(store: IdentityStore, group_id: int) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(users.c.username).join(group_members, group_members.c.user_id
                                                                             == users.c.id)
                                           .where(group_members.c.group_id == group_id))}


def _resource(permission: SourcePermission, experiment_ids: dict[int, int]) -> str | None:
    kind = _RESOURCE_KINDS.get(permission.resource_type)
    if kind is None:
        return None
    if permission.pattern == "*":
        return f"{kind}-name:*"
    if kind == "model":
        return f"model:{permission.pattern}"
    if not permission.pattern.isdigit() or int(permission.pattern) not in experiment_ids:
        return ""
    return f"experiment:{experiment_ids[int(permission.pattern)]}"


def copy_permissions(snapshot: AuthSnapshot, engine: Engine, experiment_ids: dict[int, int], actor: str,
                     tally: Tally, advance: Callable[[int], None]) -> None:
    """Store each permission as a grant to ``user:<name>`` or ``group:<role>``; one transaction each."""
    known_groups = {r.name for r in snapshot.roles if r.workspace == DEFAULT_WORKSPACE}
    for p in snapshot.permissions:
        advance(1)
        kind, name = p.holder
        if p.workspace != DEFAULT_WORKSPACE:
            tally.skipped("permissions", "in MLflow workspaces other than 'default'")
            continue
        if p.permission == "DENY":
            tally.skipped("permissions", "DENY rules (re-create them as denies in the policy file)")
            tally.note(f"MLflow denies {kind} {name!r} on {p.resource_type} {p.pattern!r}: add a deny to the "
                       "policy file, or access may be wider than it was in MLflow.")
            continue
        permission = _PERMISSIONS.get(p.permission)
        resource = _resource(p, experiment_ids)
        if permission is None or resource is None:
            tally.skipped("permissions", f"kinds mlgate does not have ({p.resource_type} {p.permission})")
            continue
        if resource == "":
            tally.skipped("permissions", "on experiments that were not imported")
            continue
        if resource.endswith("-name:*") and permission == "NO_PERMISSIONS":
            tally.skipped("permissions", "NO_PERMISSIONS on every resource (the default already)")
            continue
        subject = f"user:{name}" if kind == "user" else f"group:{name}"
        with engine.connect() as conn:
            user_missing = kind == "user" and IdentityStore(engine).user_by_name(name) is None
            if user_missing or (kind == "role" and name not in known_groups):
                tally.skipped("permissions", "holders that were not imported")
                continue
            try:
                resource = stored_selector(conn, resource)  # one model: by its stable id
            except UnknownResource:
                tally.skipped("permissions", "on registered models that were not imported")
                continue
            held = list_grants(conn, subject=subject, resource=resource)
        if held:
            if held[0].permission == permission:
                tally.present("permissions")
            else:
                tally.skipped("permissions", "mlgate already grants another level (kept)")
            continue
        with engine.begin() as conn:
            put_grant(conn, subject, resource, permission, created_by=actor)
        tally.imported("permissions")
