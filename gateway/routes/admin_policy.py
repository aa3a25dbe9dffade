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

from sqlalchemy import Connection, select

from auth.grants import list_grants, put_grant, revoke_grant
from auth.tables import users
from gateway.grant_selectors import UnknownResource, experiment_names, shown_rows, stored_selector
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

    def to_json(self) -> dict:
        """The change with only the fields its kind uses."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _managed(source: str, owner_grants: bool) -> bool:
    return source == "api" or (owner_grants and source == "owner")


def export_names(conn: Connection, access: dict) -> dict[str, str]:
    """The name of each experiment an exported grant names by id (``{"experiment:1": "demo"}``), for comments."""
    return experiment_names(conn, [g["resource"] for g in access["grants"]])


def export_access(conn: Connection, *, owner_grants: bool = False) -> dict:
    """The ``access`` section (groups and API grants; owner grants too if asked) in a stable order."""
    groups = {g["name"]: sorted(g["members"]) for g in admin_store.list_groups(conn)}
    grants = sorted(({"principal": r.subject, "resource": r.resource, "permission": r.permission}
                     for r in shown_rows(conn, list_grants(conn)) if _managed(r.source, owner_grants)),
                    key=lambda g: (g["principal"], g["resource"]))
    return {"groups": groups, "grants": grants}


def _member_key(text: str) -> str:
    return text if text.startswith(("user:", "service:")) else f"user:{text}"


def _shown_member(key: str) -> str:
    return key.removeprefix("user:")


def desired_access(access: object) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
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
    grants = {(g.principal, g.resource): g.permission for g in parsed.grants}
    return groups, grants


def plan(conn: Connection, access: object, *, owner_grants: bool = False) -> list[Change]:
    """The changes that make the stored groups and API grants (and owner grants, with ``owner_grants``)
    equal to ``access``; PolicyFileError lists every problem (invalid entries, unknown members or subjects)."""
    groups, grants = desired_access(access)
    accounts = {f"{'service' if r.kind == 'service' else 'user'}:{r.username}"
                for r in conn.execute(select(users.c.username, users.c.kind))}
    problems = [f"access.groups.{name}: no account {_shown_member(m)} exists"
                for name, members in sorted(groups.items()) for m in sorted(members) if m not in accounts]
    for i, (subject, resource) in enumerate(grants):
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
    stored = [r for r in shown_rows(conn, list_grants(conn)) if _managed(r.source, owner_grants)]
    current_grants = {(r.subject, r.resource): r.permission for r in stored}
    owners = {(r.subject, r.resource) for r in stored if r.source == "owner"}
    changes = [Change("add", "group", group=name) for name in sorted(set(groups) - set(current_groups))]
    for name in sorted(groups):
        have = current_groups.get(name, set())
        changes += [Change("add", "member", group=name, member=_shown_member(m)) for m in sorted(groups[name] - have)]
        changes += [Change("remove", "member", group=name, member=_shown_member(m))
                    for m in sorted(have - groups[name])]
    for key in sorted(grants):
        if key not in current_grants:
            changes.append(Change("add", "grant", subject=key[0], resource=key[1], permission=grants[key]))
        elif current_grants[key] != grants[key]:
            changes.append(Change("change", "grant", subject=key[0], resource=key[1], permission=grants[key],
                                  old_permission=current_grants[key], source="owner" if key in owners else None))
    changes += [Change("remove", "grant", subject=k[0], resource=k[1], permission=current_grants[k],
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
                      created_by=actor)
        elif change.kind == "grant":
            revoke_grant(conn, change.subject, stored_selector(conn, change.resource))
        else:
            touched.extend(admin_store.delete_group(conn, change.group))
    return touched
