"""Group lifecycle shared by the admin API and SCIM: deleting a group takes everything that names it."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from auth.grants import bump_generation
from auth.roles import unassign_subjects
from auth.tables import grants, group_members, groups, users


def bump_users(conn: Connection, user_ids: list[int]) -> None:
    """End the cached identities and sessions of these accounts (their groups changed)."""
    if user_ids:
        conn.execute(update(users).where(users.c.id.in_(user_ids)).values(generation=users.c.generation + 1))


def delete_group_rows(conn: Connection, group_id: int, name: str) -> list[int]:
    """Delete a group, its memberships, its grants and its roles in the caller's transaction; returns the
    former members' ids (their generation is bumped, so every process drops their cached principals)."""
    member_ids = list(conn.execute(select(group_members.c.user_id)
                                   .where(group_members.c.group_id == group_id)).scalars())
    conn.execute(delete(group_members).where(group_members.c.group_id == group_id))
    conn.execute(delete(groups).where(groups.c.id == group_id))
    # A later group of the same name must not inherit these grants.
    if conn.execute(delete(grants).where(grants.c.subject == f"group:{name}")).rowcount:
        bump_generation(conn)
    unassign_subjects(conn, [f"group:{name}"])  # nor its roles
    bump_users(conn, member_ids)
    return member_ids
