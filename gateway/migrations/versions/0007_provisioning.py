"""Provisioning: where each account comes from, and the SCIM identifiers of accounts and groups.

``auth_users.source`` says who manages an account (local, oidc, scim); SCIM (RFC 7643) manages only the
accounts and groups it created, so an identity provider can never take over or disable a local
administrator by naming it. ``external_id`` is the provider's own id (RFC 7643 section 3.1); ``profile``
keeps the SCIM attributes mlgate does not use itself (displayName, name, emails) so they round-trip.
A group's ``scim_id`` is a random id that is never reused (SQLite may reuse a deleted group's row id).

Revision ID: 0007_provisioning
Revises: 0006_workspaces
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_provisioning'
down_revision = '0006_workspaces'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a constant default: existing accounts are local (no table rebuild on SQLite).
    with op.batch_alter_table('auth_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='local', nullable=False))
        batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('profile', sa.Text(), nullable=True))
    with op.batch_alter_table('auth_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scim_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_auth_groups_scim_id', ['scim_id'], unique=True)
    # Accounts that single sign-on created are linked to a provider: they come from it.
    op.execute("UPDATE auth_users SET source = 'oidc' WHERE id IN (SELECT user_id FROM auth_oidc_identities) "
               "AND password_hash IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('auth_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_groups_scim_id')
        batch_op.drop_column('external_id')
        batch_op.drop_column('scim_id')
    with op.batch_alter_table('auth_users', schema=None) as batch_op:
        batch_op.drop_column('profile')
        batch_op.drop_column('external_id')
        batch_op.drop_column('source')
