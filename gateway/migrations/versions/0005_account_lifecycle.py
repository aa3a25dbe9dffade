"""Account lifecycle: account ids are never reused (filled in by the account lifecycle work).

Revision ID: 0005_account_lifecycle
Revises: 0004_resource_lifecycle
Create Date: 2026-12-07
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0005_account_lifecycle'
down_revision = '0004_resource_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
