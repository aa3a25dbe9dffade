"""Traces linked to runs (MLflow's LinkTracesToRun): one row per (trace, run), cascading with both.

Revision ID: 0010_trace_run_links
Revises: 0009_audit_workspace
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_trace_run_links'
down_revision = '0009_audit_workspace'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trace_run_links',
        sa.Column('request_id', sa.String(length=50), nullable=False),
        sa.Column('run_uuid', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['trace_info.request_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('request_id', 'run_uuid'),
    )
    op.create_index('ix_trace_run_links_run', 'trace_run_links', ['run_uuid', 'request_id'])


def downgrade() -> None:
    op.drop_index('ix_trace_run_links_run', table_name='trace_run_links')
    op.drop_table('trace_run_links')
