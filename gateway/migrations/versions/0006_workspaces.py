"""Workspaces: every experiment and registered model belongs to one; existing data to 'default'.

Revision ID: 0006_workspaces
Revises: 0005_account_lifecycle
Create Date: 2026-12-07
"""
import time

import sqlalchemy as sa
from alembic import op

revision = '0006_workspaces'
down_revision = '0005_account_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    workspaces = op.create_table(
        'workspaces',
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('creation_time', sa.BigInteger(), nullable=False),
        sa.Column('last_update_time', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    now = int(time.time() * 1000)
    op.bulk_insert(workspaces, [{'name': 'default', 'description': 'The workspace of requests that name none.',
                                 'creation_time': now, 'last_update_time': now}])
    # ADD COLUMN with a constant default: every existing row is in 'default' (no table rebuild on SQLite,
    # no rewrite on PostgreSQL 11+).
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workspace', sa.String(length=63), server_default='default', nullable=False))
        batch_op.create_index('ix_experiments_workspace', ['workspace'], unique=False)
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workspace', sa.String(length=63), server_default='default', nullable=False))
        batch_op.create_index('ix_registered_models_workspace', ['workspace'], unique=False)
    # Roles (auth/roles.py): a role lives in one workspace; its permissions are grants to role@<id>.
    op.create_table(
        'auth_roles',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('workspace', sa.String(length=63), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('workspace', 'name', name='uq_auth_roles_workspace_name'),
        sqlite_autoincrement=True,
    )
    op.create_table(
        'auth_role_permissions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('role_id', sa.Integer(), nullable=False),
        sa.Column('resource_type', sa.String(length=32), nullable=False),
        sa.Column('resource_pattern', sa.String(length=500), nullable=False),
        sa.Column('permission', sa.String(length=16), nullable=False),
        sa.Column('selector', sa.String(length=600), nullable=False),
        sa.ForeignKeyConstraint(['role_id'], ['auth_roles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('role_id', 'resource_type', 'resource_pattern', name='uq_auth_role_permissions'),
        sqlite_autoincrement=True,
    )
    op.create_table(
        'auth_role_assignments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('role_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['role_id'], ['auth_roles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('role_id', 'subject', name='uq_auth_role_assignments'),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table('auth_role_assignments')
    op.drop_table('auth_role_permissions')
    op.drop_table('auth_roles')
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_index('ix_registered_models_workspace')
        batch_op.drop_column('workspace')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('ix_experiments_workspace')
        batch_op.drop_column('workspace')
    op.drop_table('workspaces')
