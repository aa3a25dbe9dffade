"""Grants made through the API or CLI (and automatic creator grants), with a policy generation counter.

Every change bumps ``auth_policy_generation`` in the same transaction, so each server process notices
a change with one primary-key read and recompiles its policy (the gateway checks at most once a second).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, Integer, Table, delete, insert, select, update

from auth.store import now_ms
from auth.tables import grants, metadata
from policies.model import Grant, Permission, ResourceKind, ResourceSelector, SubjectRef

policy_generation = Table(
    "auth_policy_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

_KIND_TEXT = {ResourceKind.EXPERIMENT: "experiment", ResourceKind.REGISTERED_MODEL: "registered_model"}


@dataclass(frozen=True)
class GrantRow:
    """One stored grant, as listed by the API and CLI."""

    id: int
    subject: str
    # selector syntax: experiment:<id>, experiment-name:<glob>, model-id:<stable id>, model-name:<glob>
    # (gateway.grant_selectors shows model-id:<id> as model:<current name>)
    resource: str
    permission: str
    source: str
    created_by: str | None
    created_at: int
    expires_at: int | None = None  # epoch ms; None: does not expire
    break_glass: bool = False


# A break-glass grant is emergency access: it must expire, and within this long.
MAX_BREAK_GLASS_MS = 7 * 86_400_000


def _selector_text(kind: str, resource_id: str | None, pattern: str | None) -> str:
    if kind == "experiment":
        return f"experiment:{resource_id}" if resource_id is not None else f"experiment-name:{pattern}"
    return f"model-id:{resource_id}" if resource_id is not None else f"model-name:{pattern}"


def _row(row) -> GrantRow:
    return GrantRow(row.id, row.subject, _selector_text(row.resource_kind, row.resource_id, row.name_pattern),
                    row.permission, row.source, row.created_by, row.created_at, row.expires_at, bool(row.break_glass))


def current_generation(conn: Connection) -> int:
    """The policy generation (0 before the first grant change)."""
    value = conn.execute(select(policy_generation.c.generation).where(policy_generation.c.id == 1)).scalar()
    return int(value or 0)


def bump_generation(conn: Connection) -> None:
    """Tell every process that grants changed (call inside the changing transaction)."""
    if conn.execute(update(policy_generation).where(policy_generation.c.id == 1)
                    .values(generation=policy_generation.c.generation + 1)).rowcount == 0:
        conn.execute(insert(policy_generation).values(id=1, generation=1))


def list_grants(conn: Connection, *, subject: str | None = None, resource: str | None = None) -> list[GrantRow]:
    """Stored grants, optionally filtered by subject and exact selector."""
    stmt = select(grants).order_by(grants.c.id)
    if subject is not None:
        stmt = stmt.where(grants.c.subject == subject)
    rows = [_row(r) for r in conn.execute(stmt)]
    if resource is not None:
        rows = [r for r in rows if r.resource == resource]
    return rows


def policy_grants(conn: Connection) -> list[Grant]:
    """Every stored grant as a policy :class:`Grant` cited ``api-grant:<id>``; malformed rows are skipped."""
    out = []
    for row in list_grants(conn):
        try:
            out.append(Grant.from_api(row.id, row.subject, row.resource, row.permission,
                                      expires_at=row.expires_at, break_glass=row.break_glass))
        except ValueError:
            continue  # a row written by a newer version we do not understand never widens access
    return out


def put_grant(conn: Connection, subject: str, resource: str, permission: str, *, source: str = "api",
              created_by: str | None = None, expires_at: int | None = None, break_glass: bool = False,
              now: int | None = None) -> GrantRow:
    """Create or replace the grant of ``subject`` on ``resource``; raises ValueError on bad syntax.

    One registered model is named by its stable id (``model-id:<id>``), never by its name, so the grant
    follows the model through renames and never reaches a later model of the same name. ``expires_at``
    (epoch ms, after ``now``) makes it stop applying then; a ``break_glass`` grant must expire within
    :data:`MAX_BREAK_GLASS_MS`.
    """
    ref = SubjectRef.parse(subject)
    selector = _stored(resource)
    perm = Permission.parse(permission)
    created_at = now_ms() if now is None else now
    if expires_at is not None and expires_at <= created_at:
        raise ValueError("expires_at must be in the future")
    if break_glass and (expires_at is None or expires_at - created_at > MAX_BREAK_GLASS_MS):
        raise ValueError(f"a break-glass grant must expire within {MAX_BREAK_GLASS_MS // 86_400_000} days")
    # The same validation the policy applies.
    Grant.from_api(0, ref.key, selector.text, perm.name, expires_at=expires_at, break_glass=break_glass)
    _delete(conn, ref.key, selector)
    values = {"subject": ref.key, "resource_kind": _KIND_TEXT[selector.kind], "resource_id": selector.id,
              "name_pattern": selector.pattern, "permission": perm.name, "source": source,
              "created_by": created_by, "created_at": created_at, "expires_at": expires_at,
              "break_glass": break_glass}
    new_id = conn.execute(insert(grants).values(**values)).inserted_primary_key[0]
    bump_generation(conn)
    return GrantRow(new_id, ref.key, selector.text, perm.name, source, created_by, created_at, expires_at,
                    break_glass)


def _stored(resource: str) -> ResourceSelector:
    selector = ResourceSelector.parse(resource)
    if selector.name is not None:
        raise ValueError(f"{resource!r}: a stored grant names one registered model by its stable id (model-id:<id>)")
    return selector


def _delete(conn: Connection, subject: str, selector: ResourceSelector) -> int:
    stmt = delete(grants).where(grants.c.subject == subject, grants.c.resource_kind == _KIND_TEXT[selector.kind])
    if selector.id is not None:
        stmt = stmt.where(grants.c.resource_id == selector.id)
    else:
        stmt = stmt.where(grants.c.resource_id.is_(None), grants.c.name_pattern == selector.pattern)
    return conn.execute(stmt).rowcount


def revoke_grant(conn: Connection, subject: str, resource: str) -> bool:
    """Remove the grant of ``subject`` on ``resource``; False when there was none."""
    removed = _delete(conn, SubjectRef.parse(subject).key, _stored(resource))
    if removed:
        bump_generation(conn)
    return bool(removed)


def revoke_resource(conn: Connection, resource: str) -> int:
    """Remove every grant on one resource (e.g. when the resource is deleted for good)."""
    selector = _stored(resource)
    stmt = delete(grants).where(grants.c.resource_kind == _KIND_TEXT[selector.kind],
                                grants.c.resource_id == selector.id)
    removed = conn.execute(stmt).rowcount
    if removed:
        bump_generation(conn)
    return removed


def revoke_subjects(conn: Connection, subjects: list[str]) -> int:
    """Remove every stored grant of these subjects (an account being deleted), in the caller's transaction.

    A later account or group of the same name must start with nothing: stored grants name their subject,
    and names are reused.
    """
    removed = conn.execute(delete(grants).where(grants.c.subject.in_(subjects))).rowcount if subjects else 0
    if removed:
        bump_generation(conn)
    return removed
