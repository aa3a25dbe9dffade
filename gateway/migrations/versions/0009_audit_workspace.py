"""The audit log records each event's workspace in a column of its own, so it can be filtered.

Events written before this release have none (NULL): they were all in ``default`` or were not requests.

Revision ID: 0009_audit_workspace
Revises: 0008_governance
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_audit_workspace'
down_revision = '0008_governance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_audit_log") as batch:
        batch.add_column(sa.Column("workspace", sa.String(63), nullable=True))
    op.create_index("ix_auth_audit_log_workspace", "auth_audit_log", ["workspace", "at"])


def downgrade() -> None:
    op.drop_index("ix_auth_audit_log_workspace", table_name="auth_audit_log")
    with op.batch_alter_table("auth_audit_log") as batch:
        batch.drop_column("workspace")
