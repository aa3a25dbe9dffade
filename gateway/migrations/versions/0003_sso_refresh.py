"""Single sign-on re-validation by refresh token: sealed provider tokens and a renewal claim per SSO session.

Revision ID: 0003_sso_refresh
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_sso_refresh'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('auth_oidc_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('id_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('refreshing_until', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('notice', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('auth_oidc_sessions', schema=None) as batch_op:
        batch_op.drop_column('notice')
        batch_op.drop_column('refreshing_until')
        batch_op.drop_column('id_token')
        batch_op.drop_column('refresh_token')
