"""Stored groups and API grants as a policy file: export them, plan the changes a file implies, apply them.

The file is the desired state of ``access.groups`` and ``access.grants``: groups and API grants the file
does not name are removed. Creators' MANAGE grants (source ``owner``) are neither exported nor touched by
default: they name this server's resource ids, and a file written by hand (or exported before) must not
strip every creator of their experiments. With ``owner_grants`` the file is the desired state of owner
grants too: they are exported, an owner grant the file keeps stays an owner grant, and one it leaves out
is removed. Applying runs in the caller's one transaction, so it is all-or-nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from auth.grants import list_grants, put_grant, revoke_grant
from auth.store import now_ms
from auth.tables import users
from gateway.grant_selectors import UnknownResource, shown_rows, stored_selector
from gateway.routes import admin_store
from policies.file import PolicyFileError, policy_from_data


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


def plan(conn: Connection, access: object, *, owner_grants: bool = False) -> list[Change]:
    """The changes that make the stored groups and API grants (and owner grants, with ``owner_grants``)
    equal to ``access``; PolicyFileError lists every problem (invalid entries, unknown members or subjects)."""
    groups, grants = desired_access(access)
    accounts = {f"{'service' if r.kind == 'service' else 'user'}:{r.username}"
                for r in conn.execute(select(users.c.username, users.c.kind))}
    problems = [f"access.groups.{name}: no account {_shown_member(m)} exists"
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
    return changes


def apply(conn: Connection, changes: list[Change], actor: str) -> list[int]:
    """Carry out a plan inside the caller's transaction; returns ids of accounts whose groups changed."""
    touched: list[int] = []
    for change in changes:
        if change.kind == "group" and change.op == "add":
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
