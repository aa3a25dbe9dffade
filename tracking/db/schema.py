"""Every tracking table, imported so that ``metadata`` is complete (Alembic and tests use this)."""

from tracking.db import mlflow3_tables, registry_tables, tables, workspace_tables  # noqa: F401  (registers tables)
from tracking.db.base import metadata

__all__ = ["metadata"]
