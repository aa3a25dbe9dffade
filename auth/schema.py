"""Every identity-layer table, imported so that ``metadata`` is complete (Alembic and tests use this)."""

from auth import grants, roles, tables  # noqa: F401  (registers tables)
from auth.tables import metadata

__all__ = ["metadata"]
