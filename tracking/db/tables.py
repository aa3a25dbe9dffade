"""Tables of the classic tracking API: experiments, runs, params, tags, metrics, datasets, inputs."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tracking.db.base import metadata

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    # Unique per workspace (migration 0011): the same name in two workspaces is two experiments.
    Column("name", String(500), nullable=False),
    Column("artifact_location", String(1000), nullable=False),
    Column("lifecycle_stage", String(32), nullable=False, default="active"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    # The workspace the experiment (its runs, traces, logged models, artifacts) belongs to; never changes.
    Column("workspace", String(63), nullable=False, server_default="default"),
    Index("ix_experiments_workspace", "workspace"),
    UniqueConstraint("workspace", "name", name="uq_experiments_workspace_name"),
    # Never reuse the id of a removed experiment on SQLite: ids key permissions and artifact paths.
    sqlite_autoincrement=True,
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("experiment_id", "key"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_uuid", String(32), primary_key=True),
    Column("name", String(250), nullable=False, default=""),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("user_id", String(256), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, default="active"),
    Column("artifact_uri", String(1000), nullable=False),
    Column("deleted_time", BigInteger, nullable=True),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_uuid", "key"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_uuid", "key"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float(53), nullable=False),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False, default=0),
    # MLflow 3: a metric may belong to a logged model and be computed on a dataset.
    Column("model_id", String(64), nullable=True),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(36), nullable=True),
    # MLflow's metric identity: logging the same point twice stores it once. Its prefix
    # (run_uuid, key, step) also serves history reads and the sampled bulk-interval query.
    UniqueConstraint("run_uuid", "key", "step", "timestamp", "value", "is_nan", name="uq_metrics_point"),
)
# Logged models read their metrics by model_id; most points have none, so only those that do are indexed.
Index("ix_metrics_model_id", metrics.c.model_id, postgresql_where=metrics.c.model_id.isnot(None),
      sqlite_where=metrics.c.model_id.isnot(None))

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float(53), nullable=False),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_uuid", "key"),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("dataset_uuid", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(36), nullable=False),
    Column("source_type", String(36), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    UniqueConstraint("experiment_id", "name", "digest"),
)

# A link from a source (dataset, logged model) to a destination (run), e.g. a run's dataset inputs
# and a run's logged-model outputs.
inputs = Table(
    "inputs",
    metadata,
    Column("input_uuid", String(36), primary_key=True),
    Column("source_type", String(36), nullable=False),
    Column("source_id", String(36), nullable=False),
    Column("destination_type", String(36), nullable=False),
    Column("destination_id", String(36), nullable=False),
    Column("step", BigInteger, nullable=True),
    UniqueConstraint("source_type", "source_id", "destination_type", "destination_id"),
    Index("ix_inputs_destination", "destination_type", "destination_id"),
)

input_tags = Table(
    "input_tags",
    metadata,
    Column("input_uuid", String(36), ForeignKey("inputs.input_uuid", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", String(500), nullable=False),
    PrimaryKeyConstraint("input_uuid", "name"),
)
