"""Resource lifecycle: stable identities for grants on registered models (filled in by the lifecycle work).

Revision ID: 0004_resource_lifecycle
Revises: 0003_sso_refresh
Create Date: 2026-12-07
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0004_resource_lifecycle'
down_revision = '0003_sso_refresh'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
