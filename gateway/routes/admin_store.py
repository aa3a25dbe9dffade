"""Queries behind the admin API and the offline CLI: accounts with groups, groups, audit records, explain.

Each function takes a Connection, so the caller owns the transaction (one per request or CLI command).
Membership changes bump the members' generation, so every process drops its cached principals.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, func, insert, select

from auth.errors import AlreadyExists, InvalidInput, NotFound
from auth.groups import bump_users, delete_group_rows
from auth.store import now_ms
from auth.tables import audit_log, group_members, groups, users
from gateway.grant_selectors import experiment_names, shown_rows
from policies.compiled import CompiledPolicy
from policies.decide import decide
from policies.model import Permission, RequestContext, Resource, ResourceKind, Subject, SubjectRef
from policies.routes import resource_requirement

MAX_AUDIT_PAGE = 1000
AUDIT_FIELDS = ("id", "at", "actor", "action", "target", "client_address", "outcome", "reason", "workspace")


def check_group_name(name: str) -> str:
    """The group name, or InvalidInput when a policy could not name it (``group:<name>``)."""
    try:
        SubjectRef.parse(f"group:{name}")
    except ValueError:
        raise InvalidInput(f"Invalid group name {name!r}: no spaces, ':' or control characters.") from None
    if len(name) > 255:
        raise InvalidInput("Group name is longer than 255 characters.")
    return name


def _memberships(conn: Connection, user_ids: list[int] | None = None) -> dict[int, list[str]]:
    stmt = (select(group_members.c.user_id, groups.c.name)
            .join(groups, groups.c.id == group_members.c.group_id).order_by(groups.c.name))
    if user_ids is not None:
        stmt = stmt.where(group_members.c.user_id.in_(user_ids))
    out: dict[int, list[str]] = {}
    for row in conn.execute(stmt):
        out.setdefault(row.user_id, []).append(row.name)
    return out


def list_accounts(conn: Connection, *, kind: str | None = None, username: str | None = None) -> list[dict]:
    """Users (or service accounts) with their kind, flags, groups and source (local, oidc, scim): two queries
    whatever the count."""
    stmt = select(users.c.id, users.c.username, users.c.kind, users.c.is_admin, users.c.disabled,
                  users.c.created_at, users.c.source).order_by(users.c.id)
    if kind is not None:
        stmt = stmt.where(users.c.kind == kind)
    if username is not None:
        stmt = stmt.where(users.c.username == username)
    rows = list(conn.execute(stmt))
    member_of = _memberships(conn, [r.id for r in rows]) if username is not None else _memberships(conn)
    return [{"id": r.id, "username": r.username, "kind": r.kind, "is_admin": bool(r.is_admin),
             "disabled": bool(r.disabled), "groups": member_of.get(r.id, []), "created_at": r.created_at,
             "source": r.source}
            for r in rows]


def get_account(conn: Connection, username: str) -> dict:
    """One account as :func:`list_accounts` shows it; NotFound with MLflow's message otherwise."""
    found = list_accounts(conn, username=username)
    if not found:
        raise NotFound(f"User with username={username} not found")
    return found[0]


def account_subject(conn: Connection, username: str) -> Subject:
    """The policy's view of an account (its kind, groups and admin flag), as at sign-in."""
    account = get_account(conn, username)
    return Subject(kind="service" if account["kind"] == "service" else "user", name=account["username"],
                   groups=frozenset(account["groups"]), is_admin=account["is_admin"])


def subject_key(conn: Connection, username: str) -> str:
    """``user:<name>`` or ``service:<name>`` for an existing account."""
    return account_subject(conn, username).key


def list_groups(conn: Connection) -> list[dict]:
    """Every group with its members' usernames (two queries)."""
    rows = list(conn.execute(select(groups.c.id, groups.c.name, groups.c.created_at).order_by(groups.c.name)))
    members: dict[int, list[str]] = {}
    for m in conn.execute(select(group_members.c.group_id, users.c.username, users.c.kind)
                          .join(users, users.c.id == group_members.c.user_id).order_by(users.c.username)):
        members.setdefault(m.group_id, []).append(m.username if m.kind != "service" else f"service:{m.username}")
    return [{"name": r.name, "members": members.get(r.id, []), "created_at": r.created_at} for r in rows]


def group_exists(conn: Connection, name: str) -> bool:
    """Whether a group of this name exists (one indexed read)."""
    return conn.execute(select(groups.c.id).where(groups.c.name == name)).first() is not None


def _group_id(conn: Connection, name: str) -> int:
    group_id = conn.execute(select(groups.c.id).where(groups.c.name == name)).scalar()
    if group_id is None:
        raise NotFound(f"Group {name} not found")
    return group_id


def _user_id(conn: Connection, username: str) -> int:
    user_id = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if user_id is None:
        raise NotFound(f"User with username={username} not found")
    return user_id


def create_group(conn: Connection, name: str) -> dict:
    """Create an empty group; AlreadyExists if the name is taken."""
    check_group_name(name)
    if group_exists(conn, name):
        raise AlreadyExists(f"Group {name} already exists.")
    created_at = now_ms()
    conn.execute(insert(groups).values(name=name, created_at=created_at))
    return {"name": name, "members": [], "created_at": created_at}


def delete_group(conn: Connection, name: str) -> list[int]:
    """Delete a group, its memberships and its grants; returns the former members' ids."""
    return delete_group_rows(conn, _group_id(conn, name), name)


def add_member(conn: Connection, group: str, username: str) -> int:
    """Add an account to a group (idempotent); returns the account's id."""
    group_id, user_id = _group_id(conn, group), _user_id(conn, username)
    exists = conn.execute(select(group_members.c.user_id).where(and_(
        group_members.c.group_id == group_id, group_members.c.user_id == user_id))).first()
    if exists is None:
        conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
        bump_users(conn, [user_id])
    return user_id


def remove_member(conn: Connection, group: str, username: str) -> int:
    """Remove an account from a group; NotFound when it was not a member."""
    group_id, user_id = _group_id(conn, group), _user_id(conn, username)
    removed = conn.execute(delete(group_members).where(and_(
        group_members.c.group_id == group_id, group_members.c.user_id == user_id))).rowcount
    if not removed:
        raise NotFound(f"User {username} is not a member of group {group}")
    bump_users(conn, [user_id])
    return user_id


def grant_json(row, names: dict[str, str] | None = None) -> dict:
    """A stored grant (:class:`auth.grants.GrantRow`) as the API and CLI show it; ``resource_name`` is the
    experiment's name for a grant on one experiment (``names``: :func:`gateway.grant_selectors.experiment_names`)."""
    return {"id": row.id, "subject": row.subject, "resource": row.resource,
            "resource_name": (names or {}).get(row.resource), "permission": row.permission,
            "source": row.source, "created_by": row.created_by, "created_at": row.created_at,
            "expires_at": row.expires_at, "break_glass": row.break_glass}


def grants_json(conn: Connection, rows) -> list[dict]:
    """Stored grants as shown: models by their current name, experiments by id with their name beside it."""
    rows = shown_rows(conn, rows)
    names = experiment_names(conn, [r.resource for r in rows])
    return [grant_json(r, names) for r in rows]


def audit_records(conn: Connection, *, actor: str | None = None, action: str | None = None,
                  outcome: str | None = None, since: int | None = None, until: int | None = None,
                  after_id: int | None = None, limit: int = 100, before_id: int | None = None,
                  workspace: str | None = None) -> list[dict]:
    """Audit records matching every given filter, oldest first (``after_id`` pages forward, for tail;
    ``before_id`` pages back, for the web UI's newest-first pages)."""
    stmt = select(*[audit_log.c[name] for name in AUDIT_FIELDS])
    if actor is not None:
        # Records name actors bare (``alice``); those written before that spelling was unified carry their
        # kind (``user:alice``). Either spelling given finds both.
        name = actor.split(":", 1)[1] if actor.startswith(("user:", "service:")) else actor
        stmt = stmt.where(audit_log.c.actor.in_([name, f"user:{name}", f"service:{name}"]))
    if action is not None:
        stmt = stmt.where(audit_log.c.action == action)
    if outcome is not None:
        stmt = stmt.where(audit_log.c.outcome == outcome)
    if workspace is not None:
        stmt = stmt.where(audit_log.c.workspace == workspace)
    if since is not None:
        stmt = stmt.where(audit_log.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_log.c.at < until)
    if before_id is not None:
        stmt = stmt.where(audit_log.c.id < before_id)
    if after_id is not None:
        stmt = stmt.where(audit_log.c.id > after_id).order_by(audit_log.c.id).limit(limit)
        return [dict(r._mapping) for r in conn.execute(stmt)]
    # Without a cursor: the newest ``limit`` records, shown oldest first.
    newest = list(conn.execute(stmt.order_by(audit_log.c.id.desc()).limit(limit)))
    return [dict(r._mapping) for r in reversed(newest)]


def audit_count(conn: Connection) -> int:
    """How many audit records exist."""
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0)


def explain(policy: CompiledPolicy, subject: Subject, resource: Resource, action: str,
            at_ms: int | None = None) -> dict:
    """The decision for ``subject`` doing ``action`` (READ, EDIT or MANAGE) on ``resource``, with its rule,
    at ``at_ms`` (default: now; expired grants take no part)."""
    try:
        permission = Permission.parse(action)
    except ValueError:
        raise InvalidInput(f"Invalid action {action!r}. Expected one of READ, EDIT, MANAGE.") from None
    if permission is Permission.NO_PERMISSIONS:
        raise InvalidInput("Invalid action 'NO_PERMISSIONS'. Expected one of READ, EDIT, MANAGE.")
    context = RequestContext(now_ms=at_ms if at_ms is not None else now_ms())
    decision = decide(policy, subject, resource_requirement(permission, resource.kind), resource, context)
    kind = "experiment" if resource.kind is ResourceKind.EXPERIMENT else "registered_model"
    return {"allowed": decision.allowed, "reason": decision.reason, "rule": decision.rule,
            "subject": subject.key, "action": permission.name,
            "resource": {"type": kind, "id": resource.id, "name": resource.name}}
