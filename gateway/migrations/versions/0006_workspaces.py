"""Workspaces: every experiment and registered model belongs to one workspace (filled in by the workspaces work).

Revision ID: 0006_workspaces
Revises: 0005_account_lifecycle
Create Date: 2026-12-07
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0006_workspaces'
down_revision = '0005_account_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
