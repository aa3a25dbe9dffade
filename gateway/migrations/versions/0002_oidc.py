"""Single sign-on: provider identities linked to users, and sessions started through a provider.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auth_oidc_identities',
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['auth_users.id'], name=op.f('fk_auth_oidc_identities_user_id_auth_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider', 'subject', name=op.f('pk_auth_oidc_identities'))
    )
    with op.batch_alter_table('auth_oidc_identities', schema=None) as batch_op:
        batch_op.create_index('ix_auth_oidc_identities_user', ['user_id'], unique=False)

    op.create_table('auth_oidc_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('revalidate_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['auth_sessions.id'],
                            name=op.f('fk_auth_oidc_sessions_session_id_auth_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_auth_oidc_sessions'))
    )


def downgrade() -> None:
    op.drop_table('auth_oidc_sessions')
    with op.batch_alter_table('auth_oidc_identities', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_oidc_identities_user')
    op.drop_table('auth_oidc_identities')
