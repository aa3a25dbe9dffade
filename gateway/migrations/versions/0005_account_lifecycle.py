"""Account lifecycle: account ids are never reused, and grants of deleted accounts are gone.

SQLite gives a table without AUTOINCREMENT the id max(id) + 1, so deleting the newest account handed its
id to the next one (issue #18, finding 4): ``auth_users`` is rebuilt with AUTOINCREMENT, keeping every row
and every foreign key that points at it (gateway.db runs SQLite migrations with foreign keys off and
checks them all before committing). PostgreSQL's SERIAL sequence never goes back; it is only moved past
the highest existing id, in case rows were ever inserted with explicit ids (the sequence would then hand
out an id that is taken, or was).

Stored grants naming ``user:<name>`` or ``service:<name>`` for which no such account exists were left by
deletions before this release; a new account of that name would inherit them (finding 2), so they go.

Revision ID: 0005_account_lifecycle
Revises: 0004_resource_lifecycle
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_account_lifecycle'
down_revision = '0004_resource_lifecycle'
branch_labels = None
depends_on = None


def _drop_orphaned_grants(bind) -> None:
    users = sa.table("auth_users", sa.column("username"), sa.column("kind"))
    grants = sa.table("auth_grants", sa.column("id"), sa.column("subject"))
    accounts = {f"{'service' if kind == 'service' else 'user'}:{name}"
                for name, kind in bind.execute(sa.select(users.c.username, users.c.kind))}
    orphaned = [gid for gid, subject in bind.execute(sa.select(grants.c.id, grants.c.subject))
                if subject.startswith(("user:", "service:")) and subject not in accounts]
    for start in range(0, len(orphaned), 500):
        bind.execute(sa.delete(grants).where(grants.c.id.in_(orphaned[start:start + 500])))
    if orphaned:
        generation = sa.table("auth_policy_generation", sa.column("id"), sa.column("generation"))
        if bind.execute(sa.update(generation).where(generation.c.id == 1)
                        .values(generation=generation.c.generation + 1)).rowcount == 0:
            bind.execute(sa.insert(generation).values(id=1, generation=1))


def _sequence_past_existing_ids(bind) -> None:
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('auth_users', 'id')")).scalar()
    if sequence is None:
        return
    highest = bind.execute(sa.text("SELECT max(id) FROM auth_users")).scalar()
    if highest is not None:
        # setval never moves it back: GREATEST keeps a sequence that is already further along.
        bind.execute(sa.text("SELECT setval(CAST(:seq AS regclass), GREATEST(:highest, "
                             "COALESCE(pg_sequence_last_value(CAST(:seq AS regclass)), 0)), true)"),
                     {"seq": sequence, "highest": highest})


def upgrade() -> None:
    bind = op.get_bind()
    _drop_orphaned_grants(bind)
    if bind.dialect.name == "postgresql":
        _sequence_past_existing_ids(bind)
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("auth_users", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            batch_op.alter_column("id", existing_type=sa.Integer(), autoincrement=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("auth_users", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": False}) as batch_op:
            batch_op.alter_column("id", existing_type=sa.Integer(), autoincrement=True)
