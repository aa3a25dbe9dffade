"""Governance: scoped access tokens, expiring and break-glass grants, a hash-chained audit log.

- ``auth_access_tokens.scope``: a scoped token's resource patterns, workspaces and client networks (JSON).
- ``auth_grants.expires_at`` and ``auth_grants.break_glass``: grants that stop applying at a moment.
- ``auth_audit_log.hash`` and the one-row ``auth_audit_chain``: each record's hash covers the previous
  one's. Records written before this revision keep a NULL hash; the chain starts with the first record
  written after it (``mlgate audit verify`` says how many records precede it).

Revision ID: 0008_governance
Revises: 0007_provisioning
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_governance'
down_revision = '0007_provisioning'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('auth_access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.Text(), nullable=True))
    with op.batch_alter_table('auth_grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('break_glass', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('auth_audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    chain = op.create_table(
        'auth_audit_chain',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=False),
        sa.Column('last_hash', sa.String(length=64), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_audit_chain')),
    )
    # The head exists from the start, so the first appends of several processes queue on its row lock.
    op.bulk_insert(chain, [{'id': 1, 'last_id': 0, 'last_hash': '0' * 64, 'count': 0}])


def downgrade() -> None:
    op.drop_table('auth_audit_chain')
    with op.batch_alter_table('auth_audit_log', schema=None) as batch_op:
        batch_op.drop_column('hash')
    with op.batch_alter_table('auth_grants', schema=None) as batch_op:
        batch_op.drop_column('break_glass')
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('auth_access_tokens', schema=None) as batch_op:
        batch_op.drop_column('scope')
