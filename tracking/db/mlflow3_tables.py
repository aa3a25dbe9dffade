"""Tables of the MLflow 3 surface: logged models, traces (info, tags, metadata, spans) and assessments.

Column names follow MLflow's own schema where a client or operator could notice (``request_id`` is
the trace id column, as in MLflow's ``trace_info``), so data can be compared side by side.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from tracking.db.base import metadata

logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("artifact_location", String(1000), nullable=False),
    Column("creation_timestamp_ms", BigInteger, nullable=False),
    Column("last_updated_timestamp_ms", BigInteger, nullable=False),
    # LoggedModelStatus numbers: 1 PENDING, 2 READY, 3 UPLOAD_FAILED.
    Column("status", Integer, nullable=False),
    Column("lifecycle_stage", String(32), nullable=False, default="active"),
    Column("model_type", String(500), nullable=True),
    Column("source_run_id", String(32), nullable=True),
    Column("status_message", String(1000), nullable=True),
    Index("ix_logged_models_experiment_created", "experiment_id", "creation_timestamp_ms"),
)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id", ondelete="CASCADE"), nullable=False),
    Column("experiment_id", Integer, nullable=False),
    Column("param_key", String(255), nullable=False),
    Column("param_value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "param_key"),
    Index("ix_logged_model_params_key", "param_key", "model_id"),
)

logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id", ondelete="CASCADE"), nullable=False),
    Column("experiment_id", Integer, nullable=False),
    Column("tag_key", String(255), nullable=False),
    Column("tag_value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "tag_key"),
    Index("ix_logged_model_tags_key", "tag_key", "model_id"),
)

trace_info = Table(
    "trace_info",
    metadata,
    Column("request_id", String(50), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("execution_time_ms", BigInteger, nullable=True),
    # TraceInfoV3.State names: OK, ERROR, IN_PROGRESS, STATE_UNSPECIFIED.
    Column("status", String(50), nullable=False),
    Column("client_request_id", String(50), nullable=True),
    Column("request_preview", String(1000), nullable=True),
    Column("response_preview", String(1000), nullable=True),
    Index("ix_trace_info_experiment_timestamp", "experiment_id", "timestamp_ms"),
)

trace_tags = Table(
    "trace_tags",
    metadata,
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=True),
    PrimaryKeyConstraint("request_id", "key"),
    Index("ix_trace_tags_key_value", "key", "request_id"),
)

trace_request_metadata = Table(
    "trace_request_metadata",
    metadata,
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=True),
    PrimaryKeyConstraint("request_id", "key"),
    Index("ix_trace_request_metadata_key", "key", "request_id"),
)

# Traces linked to runs (LinkTracesToRun; MLflow's entity associations of type TRACE -> RUN): a trace is
# found by a run's traces search when it is linked here or its metadata names the run (mlflow.sourceRun).
# Both sides cascade: a deleted trace or run takes its links with it, so a reused trace id links nothing.
trace_run_links = Table(
    "trace_run_links",
    metadata,
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("request_id", "run_uuid"),
    Index("ix_trace_run_links_run", "run_uuid", "request_id"),
)

# One row per span; ``content`` is the OTLP span as protobuf JSON (``preserving_proto_field_name``),
# so a trace read back carries every attribute, event and status exactly as it was exported.
spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("experiment_id", Integer, nullable=False),
    Column("span_id", String(50), nullable=False),
    Column("parent_span_id", String(50), nullable=True),
    Column("name", Text, nullable=True),
    Column("type", String(500), nullable=True),
    Column("status", String(50), nullable=False),
    Column("start_time_unix_nano", BigInteger, nullable=False),
    Column("end_time_unix_nano", BigInteger, nullable=True),
    Column("content", Text, nullable=False),
    PrimaryKeyConstraint("trace_id", "span_id"),
)

assessments = Table(
    "assessments",
    metadata,
    Column("assessment_id", String(50), primary_key=True),
    Column("trace_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    # "feedback" or "expectation".
    Column("assessment_type", String(50), nullable=False),
    # The value as JSON (any JSON value); for expectations with a serialized value, that object.
    Column("value", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("source_type", String(50), nullable=False),
    Column("source_id", String(250), nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("span_id", String(50), nullable=True),
    Column("rationale", Text, nullable=True),
    Column("overrides", String(50), nullable=True),
    Column("valid", Boolean, nullable=False, default=True),
    Column("assessment_metadata", Text, nullable=True),
    Index("ix_assessments_trace", "trace_id", "created_timestamp"),
)
