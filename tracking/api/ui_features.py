"""What MLflow's web UI asks of a server beyond the tracking API: dataset summaries, trace metrics, and the
features mlgate does not serve, answered as MLflow answers when they are off, so the UI hides them.

* ``POST /ajax-api/2.0/mlflow/experiments/search-datasets``: the datasets logged to runs of the named
  experiments (the runs table's dataset filter), at most 20 experiments, each checked like a read of it.
* ``POST /ajax-api/3.0/mlflow/datasets/search``: GenAI evaluation datasets; mlgate stores none, so the
  answer is MLflow's for a server without any (an empty list).
* ``POST /ajax-api/3.0/mlflow/traces/metrics``: the experiment overview's trace charts: trace counts and
  latency from the stored traces (:mod:`tracking.store.trace_metrics`), after the same per-experiment check.
* ``GET /ajax-api/{2.0,3.0}/mlflow/get-trace-artifact``: a trace's spans in the ``traces.json`` form the
  trace viewer reads.
* The AI assistant (``assistant/config``, ``assistant/providers``): no provider, no remote access.
* ``ui-telemetry``: disabled (MLflow's fallback configuration); records posted are dropped.
* ``gateway-proxy``: no AI gateway configured, MLflow's "empty gateway" answer.

Like MLflow, these are served under ``/ajax-api`` only (the UI's prefix); they are not part of the REST API.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import and_, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.body import Args, request_args
from tracking.api.in_transaction import in_transaction
from tracking.api.responses import ok
from tracking.api.traces import with_artifact_spans
from tracking.db.tables import datasets, input_tags, inputs
from tracking.errors import invalid_parameter
from tracking.services import tracking_of
from tracking.store import traces as trace_store
from tracking.store.experiments import parse_experiment_id
from tracking.store.spans import load_spans
from tracking.store.trace_artifacts import artifact_span
from tracking.store.trace_metrics import query_trace_metrics
from tracking.store.transaction import read_connection

router_v2 = APIRouter()  # /ajax-api/2.0/mlflow
router_v3 = APIRouter()  # /ajax-api/3.0/mlflow

MAX_DATASET_EXPERIMENTS = 20  # MLflow's SearchDatasets limit
MAX_DATASET_SUMMARIES = 1000
DATASET_CONTEXT_TAG = "mlflow.data.context"
# MLflow's FALLBACK_UI_CONFIG: what its server answers when telemetry is off.
TELEMETRY_OFF = {"disable_ui_telemetry": True, "disable_ui_events": [], "ui_rollout_percentage": 0}


def _experiment_ids(args: Args, limit: int) -> list[int]:
    raw = args.str_list("experiment_ids")
    if not raw:
        raise invalid_parameter("SearchDatasets request must specify at least one experiment_id.")
    if len(raw) > limit:
        raise invalid_parameter(f"SearchDatasets request cannot specify more than {limit} experiment_ids. "
                                f"Received {len(raw)} experiment_ids.")
    return [parse_experiment_id(v, "experiment_ids") for v in raw]


@router_v2.post("/experiments/search-datasets", operation_id="datasets.search_summaries")
def search_dataset_summaries(request: Request, args: Args = Depends(request_args)):
    """(experiment, name, digest, context) of the datasets logged to the experiments' runs."""
    experiment_ids = _experiment_ids(args, MAX_DATASET_EXPERIMENTS)
    context = input_tags.alias("context")
    query = (select(datasets.c.experiment_id, datasets.c.name, datasets.c.digest, context.c.value).distinct()
             .select_from(datasets.join(inputs, inputs.c.source_id == datasets.c.dataset_uuid)
                          .outerjoin(context, and_(context.c.input_uuid == inputs.c.input_uuid,
                                                   context.c.name == DATASET_CONTEXT_TAG)))
             .where(datasets.c.experiment_id.in_(experiment_ids), inputs.c.source_type == "DATASET")
             .order_by(datasets.c.experiment_id, datasets.c.name, datasets.c.digest)
             .limit(MAX_DATASET_SUMMARIES))
    with read_connection(tracking_of(request).engine) as conn:
        rows = conn.execute(query).all()
    summaries = []
    for row in rows:
        summary = {"experiment_id": str(row.experiment_id), "name": row.name, "digest": row.digest}
        if row.value is not None:
            summary["context"] = row.value
        summaries.append(summary)
    return ok({"dataset_summaries": summaries} if summaries else {})


@router_v3.post("/datasets/search", operation_id="evaluation_datasets.search")
def search_evaluation_datasets(request: Request):
    """No GenAI evaluation datasets are stored here: MLflow's answer for a server without any."""
    return ok({"datasets": []})


@router_v3.post("/traces/metrics", operation_id="traces.metrics")
def trace_metrics(request: Request, args: Args = Depends(request_args)):
    """The overview's trace metrics (counts and latency per time bucket) of experiments the caller may read."""
    experiment_ids = _experiment_ids(args, MAX_DATASET_EXPERIMENTS)
    with read_connection(tracking_of(request).engine) as conn:
        points = query_trace_metrics(
            conn, experiment_ids=experiment_ids, view_type=args.raw("view_type"),
            metric_name=args.raw("metric_name"), aggregations=args.obj_list("aggregations"),
            dimensions=args.str_list("dimensions"), filters=args.str_list("filters"),
            time_interval_seconds=args.int("time_interval_seconds"), start_time_ms=args.int("start_time_ms"),
            end_time_ms=args.int("end_time_ms"))
    return ok({"data_points": points})


@router_v2.get("/get-trace-artifact", operation_id="traces.get_artifact")
@router_v3.get("/get-trace-artifact", operation_id="traces.get_artifact_v3")
async def get_trace_artifact(request: Request):
    """A trace's span data as MLflow's UI downloads it (``{"spans": [...]}``, its ``traces.json`` form)."""
    args = await request_args(request)
    trace_id = trace_store.validate_trace_id(args.str("request_id", required=True), "request_id")

    def load(conn):
        info = trace_store.get_trace_info(conn, trace_id)
        return info, load_spans(conn, [trace_id])[trace_id]

    info, spans = await in_transaction(request, load)
    spans = await run_in_threadpool(with_artifact_spans, request, info, spans)
    return ok({"spans": [artifact_span(s) for s in spans]})


@router_v3.get("/assistant/config", operation_id="features.assistant_config")
def assistant_config(request: Request):
    """The AI assistant is not served here: no provider, no project, no remote access."""
    return ok({"providers": {}, "projects": {}, "remote_access_allowed": False})


@router_v3.get("/assistant/providers", operation_id="features.assistant_providers")
def assistant_providers(request: Request):
    """No assistant provider is available here."""
    return ok({"providers": [], "resolved": None, "gateway_vendor_options": []})


@router_v3.get("/ui-telemetry", operation_id="features.ui_telemetry_config")
def ui_telemetry_config(request: Request):
    """UI telemetry is off: nothing is collected or sent anywhere."""
    return ok(TELEMETRY_OFF)


@router_v3.post("/ui-telemetry", operation_id="features.ui_telemetry_records")
def ui_telemetry_records(request: Request):
    """Records are dropped unread (telemetry is off), as MLflow answers then."""
    return ok({"status": "disabled"})


@router_v2.get("/gateway-proxy", operation_id="features.gateway_proxy")
@router_v2.post("/gateway-proxy", operation_id="features.gateway_proxy_via_post")
def gateway_proxy(request: Request):
    """No AI gateway is configured: MLflow's answer, an empty list of endpoints."""
    return ok({"endpoints": []})
