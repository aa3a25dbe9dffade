"""Signed audit checkpoints and retention: ``auth_audit_checkpoints`` and the chain's anchor.

- ``auth_audit_checkpoints``: Ed25519-signed (record id, chain position, hash) of the chain's head, so
  ``mlgate audit verify --public-key`` notices records deleted from the end back past a checkpoint.
- ``auth_audit_chain.anchor_id/anchor_hash/anchor_count``: where the chain starts once retention has
  pruned older records (0 and the genesis hash until then); a signed checkpoint vouches for them.

Revision ID: 0012_gov_audit_checkpoints
Revises: 0011_names_per_workspace
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_gov_audit_checkpoints'
down_revision = '0011_names_per_workspace'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'auth_audit_checkpoints',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('signature', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_audit_checkpoints')),
    )
    with op.batch_alter_table('auth_audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index('ix_auth_audit_checkpoints_seq', ['seq'], unique=False)
    with op.batch_alter_table('auth_audit_chain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anchor_id', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('anchor_hash', sa.String(length=64), server_default='0' * 64, nullable=False))
        batch_op.add_column(sa.Column('anchor_count', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('auth_audit_chain', schema=None) as batch_op:
        batch_op.drop_column('anchor_count')
        batch_op.drop_column('anchor_hash')
        batch_op.drop_column('anchor_id')
    op.drop_table('auth_audit_checkpoints')
