"""Tables of the model registry: registered models, their versions, tags and aliases.

MLflow names a registered model by its workspace and name: names are unique per workspace (migration
0012), as in MLflow 3's workspace-aware store, so every table carries the workspace and is keyed by
(workspace, name, ...). ``model_id`` is the model's stable id, never reused, for authorization (grants
name it, so they can never reach another workspace's or a re-created model of the same name). Children
reference (workspace, name) with ``ON UPDATE CASCADE`` so a rename is one UPDATE, and ``ON DELETE CASCADE``
so deleting a model removes its versions, tags and aliases. Deleted versions stay as redacted rows (stage
``Deleted_Internal``) so version numbers are never reused, as MLflow does.
"""

import uuid

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from tracking.db.base import metadata

_CASCADE = {"ondelete": "CASCADE", "onupdate": "CASCADE"}

def _model_reference() -> ForeignKeyConstraint:
    """A child's reference to its registered model: (workspace, name), following renames and deletes."""
    return ForeignKeyConstraint(["workspace", "name"], ["registered_models.workspace", "registered_models.name"],
                                **_CASCADE)


def new_model_id() -> str:
    """A registered model's stable id: never changes, never reused (grants on the model refer to it)."""
    return uuid.uuid4().hex


registered_models = Table(
    "registered_models",
    metadata,
    # The workspace the model (its versions, aliases; a prompt's too) belongs to; never changes.
    Column("workspace", String(63), nullable=False, server_default="default"),
    Column("name", String(256), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    # The name is MLflow's key and changes on rename; authorization keys on this id (migration 0004).
    Column("model_id", String(32), nullable=False, default=new_model_id),
    PrimaryKeyConstraint("workspace", "name"),
    Index("ix_registered_models_last_updated", "last_updated_time"),
    Index("ix_registered_models_model_id", "model_id", unique=True),
    Index("ix_registered_models_workspace", "workspace"),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("workspace", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=True),
    PrimaryKeyConstraint("workspace", "name", "key"),
    _model_reference(),
    Index("ix_registered_model_tags_key_value", "key", "name"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("workspace", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("user_id", String(256), nullable=True),
    Column("current_stage", String(20), nullable=False),
    Column("source", Text, nullable=True),
    # Where the artifacts really are (e.g. a logged model's location for a models:/<id> source).
    Column("storage_location", Text, nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("run_link", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("status_message", Text, nullable=True),
    Column("model_id", String(64), nullable=True),
    PrimaryKeyConstraint("workspace", "name", "version"),
    _model_reference(),
    Index("ix_model_versions_run_id", "run_id"),
    Index("ix_model_versions_last_updated", "last_updated_time"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("workspace", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=True),
    PrimaryKeyConstraint("workspace", "name", "version", "key"),
    ForeignKeyConstraint(["workspace", "name", "version"],
                         ["model_versions.workspace", "model_versions.name", "model_versions.version"],
                         name="fk_model_version_tags_model_versions", **_CASCADE),
)

registered_model_aliases = Table(
    "registered_model_aliases",
    metadata,
    Column("workspace", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("alias", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("workspace", "name", "alias"),
    _model_reference(),
)
