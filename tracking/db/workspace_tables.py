"""Workspaces: every experiment and registered model (and so everything inside them) belongs to one."""

from sqlalchemy import BigInteger, Column, String, Table, Text

from tracking.db.base import metadata
from tracking.scope import DEFAULT_WORKSPACE

__all__ = ["DEFAULT_WORKSPACE", "workspaces"]

workspaces = Table(
    "workspaces",
    metadata,
    # MLflow's rule (mlflow.store.workspace.abstract_store.WorkspaceNameValidator): 2-63 characters of
    # [a-z0-9-]; a name is never renamed, so it keys the workspace's grants and roles.
    Column("name", String(63), primary_key=True),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)
