"""What each tracking operation reads from a request, for the OpenAPI document.

The handlers parse requests by hand (``tracking.api.body``: strict JSON, MLflow's field rules), so
FastAPI cannot see their fields. This table declares them per operation id, in a compact notation the
gateway turns into OpenAPI parameters (GET: query string) or a JSON request body (other methods)::

    "name:str! tags:[tag]"   name, a required string; tags, a list of {key, value} objects

Types: ``str int num bool obj any`` and the named objects in :data:`OBJECTS`; ``[t]`` is a list of
``t``; a trailing ``!`` marks a required field. Field names and types are MLflow's REST API
(``service.proto``); a test keeps this table and the mounted routes in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Contract:
    """The fields an operation reads, and what its successful answer is."""

    fields: str = ""
    # "json": an MLflow JSON object; "file": artifact bytes of any type; "text": plain text
    success: str = "json"


OBJECTS: Mapping[str, dict] = MappingProxyType({
    "tag": {"type": "object", "properties": {"key": {"type": "string"}, "value": {"type": "string"}}},
    "param": {"type": "object", "properties": {"key": {"type": "string"}, "value": {"type": "string"}}},
    "metric": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": {"type": "number"}, "timestamp": {"type": "integer"},
        "step": {"type": "integer"}, "model_id": {"type": "string"}, "dataset_name": {"type": "string"},
        "dataset_digest": {"type": "string"}}},
    "dataset_input": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "value": {"type": "string"}}}},
        "dataset": {"type": "object", "properties": {
            "name": {"type": "string"}, "digest": {"type": "string"}, "source_type": {"type": "string"},
            "source": {"type": "string"}, "schema": {"type": "string"}, "profile": {"type": "string"}}}}},
    "model_input": {"type": "object", "properties": {"model_id": {"type": "string"}}},
    "model_output": {"type": "object", "properties": {"model_id": {"type": "string"}, "step": {"type": "integer"}}},
    "order_by": {"type": "object", "properties": {
        "field_name": {"type": "string"}, "ascending": {"type": "boolean"}, "dataset_name": {"type": "string"},
        "dataset_digest": {"type": "string"}}},
    "dataset_filter": {"type": "object", "properties": {
        "dataset_name": {"type": "string"}, "dataset_digest": {"type": "string"}}},
    "trace_location": {"type": "object", "properties": {
        "type": {"type": "string"},
        "mlflow_experiment": {"type": "object", "properties": {"experiment_id": {"type": "string"}}}}},
})

_SEARCH = "filter:str max_results:int order_by:[str] page_token:str"
_RUN = "run_id:str run_uuid:str"
_VERSION = "name:str! version:str!"

TRACKING_CONTRACTS: Mapping[str, Contract] = MappingProxyType({
    "server.info": Contract(),
    # Experiments
    "experiments.create": Contract("name:str! artifact_location:str tags:[tag]"),
    "experiments.get": Contract("experiment_id:str!"),
    "experiments.get_by_name": Contract("experiment_name:str!"),
    "experiments.update": Contract("experiment_id:str! new_name:str!"),
    "experiments.delete": Contract("experiment_id:str!"),
    "experiments.restore": Contract("experiment_id:str!"),
    "experiments.set_tag": Contract("experiment_id:str! key:str! value:str"),
    "experiments.delete_tag": Contract("experiment_id:str! key:str!"),
    "experiments.search": Contract(f"{_SEARCH} view_type:str"),
    "experiments.search_via_get": Contract(f"{_SEARCH} view_type:str"),
    # Runs and metrics
    "runs.create": Contract("experiment_id:str! user_id:str start_time:int run_name:str tags:[tag]"),
    "runs.get": Contract(_RUN),
    "runs.update": Contract(f"{_RUN} status:str end_time:int run_name:str"),
    "runs.delete": Contract(_RUN),
    "runs.restore": Contract(_RUN),
    "runs.set_tag": Contract(f"{_RUN} key:str! value:str"),
    "runs.delete_tag": Contract(f"{_RUN} key:str!"),
    "runs.log_metric": Contract(f"{_RUN} key:str! value:num! timestamp:int! step:int model_id:str "
                                "dataset_name:str dataset_digest:str"),
    "runs.log_param": Contract(f"{_RUN} key:str! value:str"),
    "runs.log_batch": Contract(f"{_RUN} metrics:[metric] params:[param] tags:[tag]"),
    "runs.log_inputs": Contract(f"{_RUN} datasets:[dataset_input] models:[model_input]"),
    "runs.log_outputs": Contract(f"{_RUN} models:[model_output]"),
    "runs.search": Contract(f"experiment_ids:[str] {_SEARCH} run_view_type:str"),
    "runs.search_via_get": Contract(f"experiment_ids:[str] {_SEARCH} run_view_type:str"),
    "metrics.get_history": Contract(f"{_RUN} metric_key:str! max_results:int page_token:str"),
    "metrics.get_history_bulk_interval": Contract("run_ids:[str]! metric_key:str! max_results:int start_step:int "
                                                  "end_step:int"),
    # Artifacts
    "artifacts.list": Contract("path:str"),
    "artifacts.get": Contract(success="file"),
    "artifacts.put": Contract(),
    "artifacts.delete": Contract(),
    "artifacts.mpu_create": Contract("path:str num_parts:int"),
    "artifacts.mpu_complete": Contract("path:str upload_id:str parts:[obj]"),
    "artifacts.mpu_abort": Contract("path:str upload_id:str"),
    "artifacts.list_for_run": Contract(f"{_RUN} path:str"),
    "artifacts.get_for_run": Contract(f"{_RUN} path:str!", success="file"),
    "model_versions.get_artifact": Contract(f"{_VERSION} path:str!", success="file"),
    # Model registry
    "registered_models.create": Contract("name:str! description:str tags:[tag]"),
    "registered_models.get": Contract("name:str!"),
    "registered_models.rename": Contract("name:str! new_name:str!"),
    "registered_models.update": Contract("name:str! description:str"),
    "registered_models.delete": Contract("name:str!"),
    "registered_models.search": Contract(_SEARCH),
    "registered_models.search_via_post": Contract(_SEARCH),
    "registered_models.set_tag": Contract("name:str! key:str! value:str"),
    "registered_models.delete_tag": Contract("name:str! key:str!"),
    "registered_models.get_latest_versions": Contract("name:str! stages:[str]"),
    "registered_models.get_latest_versions_via_get": Contract("name:str! stages:[str]"),
    "registered_models.set_alias": Contract("name:str! alias:str! version:str!"),
    "registered_models.delete_alias": Contract("name:str! alias:str!"),
    "registered_models.get_version_by_alias": Contract("name:str! alias:str!"),
    "model_versions.create": Contract("name:str! source:str! run_id:str run_link:str description:str model_id:str "
                                      "tags:[tag]"),
    "model_versions.get": Contract(_VERSION),
    "model_versions.update": Contract(f"{_VERSION} description:str"),
    "model_versions.delete": Contract(_VERSION),
    "model_versions.search": Contract(_SEARCH),
    "model_versions.search_via_post": Contract(_SEARCH),
    "model_versions.set_tag": Contract(f"{_VERSION} key:str! value:str"),
    "model_versions.delete_tag": Contract(f"{_VERSION} key:str!"),
    "model_versions.transition_stage": Contract(f"{_VERSION} stage:str! archive_existing_versions:bool"),
    "model_versions.get_download_uri": Contract(_VERSION),
    # Logged models (MLflow 3)
    "logged_models.create": Contract("experiment_id:str! name:str model_type:str source_run_id:str "
                                     "params:[param] tags:[tag]"),
    "logged_models.get": Contract("allow_deleted:bool"),
    "logged_models.finalize": Contract("model_id:str status:any"),
    "logged_models.delete": Contract(),
    "logged_models.search": Contract("experiment_ids:[str]! filter:str datasets:[dataset_filter] max_results:int "
                                     "order_by:[order_by] page_token:str"),
    "logged_models.set_tags": Contract("tags:[tag]"),
    "logged_models.delete_tag": Contract(),
    "logged_models.log_params": Contract("params:[param]"),
    "logged_models.list_artifacts": Contract("artifact_directory_path:str"),
    "logged_models.get_artifact": Contract("artifact_file_path:str!", success="file"),
    # Traces and assessments (MLflow 3)
    "traces.start": Contract("trace:obj!"),
    "traces.get_info": Contract(),
    "traces.get": Contract("trace_id:str! allow_partial:bool"),
    "traces.batch_get": Contract("trace_ids:[str]!"),
    "traces.search": Contract("experiment_ids:[str] locations:[trace_location] filter:str max_results:int "
                              "order_by:[str] page_token:str"),
    "traces.set_tag": Contract("key:str! value:str"),
    "traces.delete_tag": Contract("key:str!"),
    "traces.delete": Contract("experiment_id:str! max_timestamp_millis:int max_traces:int request_ids:[str]"),
    "traces.link_to_run": Contract("trace_ids:[str]! run_id:str!"),
    "assessments.create": Contract("assessment:obj!"),
    "assessments.get": Contract(),
    "assessments.update": Contract("assessment:obj! update_mask:any"),
    "assessments.delete": Contract(),
    # OpenTelemetry ingestion: a protobuf or JSON ExportTraceServiceRequest, described by the gateway.
    "otlp.ingest": Contract(),
})
