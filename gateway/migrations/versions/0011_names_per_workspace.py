"""Experiment names are unique per workspace: UNIQUE(name) becomes UNIQUE(workspace, name).

SQLite cannot drop a constraint in place: the ``experiments`` table is rebuilt (Alembic's batch mode copies
every row with its id), and its AUTOINCREMENT counter is carried over so that no id of an experiment
removed before the upgrade is ever given again (ids key grants and artifact paths). PostgreSQL alters the
constraints in place.

Revision ID: 0011_names_per_workspace
Revises: 0010_trace_run_links
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_names_per_workspace'
down_revision = '0010_trace_run_links'
branch_labels = None
depends_on = None


def _sqlite_sequence(bind) -> int | None:
    if bind.dialect.name != 'sqlite':
        return None
    return bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'experiments'")).scalar()


def _restore_sequence(bind, seq: int | None) -> None:
    # The rebuilt table's counter starts at its highest remaining id; the old one may have been higher.
    if seq is None:
        return
    updated = bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'experiments' AND seq < :seq"),
                           {"seq": seq}).rowcount
    if not updated and bind.execute(sa.text("SELECT 1 FROM sqlite_sequence WHERE name = 'experiments'")).first() is None:
        bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('experiments', :seq)"), {"seq": seq})


def upgrade() -> None:
    bind = op.get_bind()
    seq = _sqlite_sequence(bind)
    with op.batch_alter_table('experiments', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint('uq_experiments_name', type_='unique')
        batch_op.create_unique_constraint('uq_experiments_workspace_name', ['workspace', 'name'])
    _restore_sequence(bind, seq)


def downgrade() -> None:
    # Refused rather than losing data when two workspaces hold the same name.
    bind = op.get_bind()
    clash = bind.execute(sa.text("SELECT name FROM experiments GROUP BY name HAVING COUNT(*) > 1")).first()
    if clash is not None:
        raise RuntimeError(f"cannot downgrade: the experiment name {clash[0]!r} is used in several workspaces")
    seq = _sqlite_sequence(bind)
    with op.batch_alter_table('experiments', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint('uq_experiments_workspace_name', type_='unique')
        batch_op.create_unique_constraint('uq_experiments_name', ['name'])
    _restore_sequence(bind, seq)
