"""REST endpoints: traces (``/api/3.0/mlflow/traces``; tags and delete also under ``/api/2.0/mlflow``).

The same handler serves a v2 and a v3 path where MLflow has both; the v3 copy keeps the operation
id and stays out of the OpenAPI schema so each id is documented once.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api import assessments
from tracking.api.body import request_args
from tracking.api.in_transaction import in_transaction
from tracking.api.responses import ok
from tracking.artifacts.storage import repository_for_root
from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import visibility_scope
from tracking.services import tracking_of
from tracking.store import traces as store
from tracking.store.spans import load_spans
from tracking.store.trace_artifacts import spans_from_artifact
from tracking.store.trace_search import search_traces, visible_trace_ids

router_v2 = APIRouter()  # /api/2.0/mlflow
router_v3 = APIRouter()  # /api/3.0/mlflow
MAX_BATCH_GET = 100
SIZE_STATS_KEY = "mlflow.trace.sizeStats"


@router_v3.post("/traces", operation_id="traces.start")
async def start_trace(request: Request):
    """StartTraceV3: record a finished trace's info (spans arrive over OTLP or as an artifact)."""
    args = await request_args(request)
    trace = args.obj("trace", required=True)
    info = await in_transaction(request, lambda conn: store.start_trace(conn, trace.get("trace_info")))
    return ok({"trace": {"trace_info": info}})


def with_artifact_spans(request: Request, info: dict, spans: list[dict]) -> list[dict]:
    """Spans stored by the server, else those of the client's ``traces.json`` (read on a worker thread)."""
    if spans or info["tags"].get(store.SPANS_LOCATION_TAG) == store.SPANS_IN_TRACKING_STORE:
        return spans
    try:
        repository = repository_for_root(tracking_of(request).artifact_root)
    except MlflowError:
        return spans
    found = spans_from_artifact(repository, info["trace_id"],
                                info["trace_location"]["mlflow_experiment"]["experiment_id"],
                                info["tags"].get(store.ARTIFACT_LOCATION_TAG))
    return spans if found is None else found


def _complete(info: dict, spans: list[dict]) -> bool:
    # The client records how many spans it exported; fewer stored spans mean some are still in flight.
    stats = info["trace_metadata"].get(SIZE_STATS_KEY)
    if not stats:
        return True
    try:
        expected = int(json.loads(stats).get("num_spans", 0))
    except (ValueError, TypeError, AttributeError):
        return True
    return len(spans) >= expected


@router_v3.get("/traces/get", operation_id="traces.get")
async def get_trace(request: Request):
    """GetTrace: the trace info and all its spans (``allow_partial`` returns what has arrived so far)."""
    args = await request_args(request)
    trace_id = store.validate_trace_id(args.str("trace_id", required=True))
    allow_partial = bool(args.bool("allow_partial", default=False))

    def load(conn):
        info = store.get_trace_info(conn, trace_id)
        return info, load_spans(conn, [trace_id])[trace_id]

    info, spans = await in_transaction(request, load)
    spans = await run_in_threadpool(with_artifact_spans, request, info, spans)
    if not allow_partial and not _complete(info, spans):
        raise MlflowError(f"Trace with ID {trace_id} is not fully exported yet, please try again later.",
                          "RESOURCE_DOES_NOT_EXIST")
    return ok({"trace": {"trace_info": info, "spans": spans}})


async def _visible_infos(request: Request) -> list[dict]:
    """The requested trace infos the caller may see (``trace_ids``, optionally within ``experiment_ids``)."""
    args = await request_args(request)
    trace_ids = [store.validate_trace_id(t, "trace_ids") for t in args.str_list("trace_ids", required=True)]
    if len(trace_ids) > MAX_BATCH_GET:
        raise invalid_parameter(f"At most {MAX_BATCH_GET} trace_ids may be fetched at once, got {len(trace_ids)}.")
    experiment_ids = set(args.str_list("experiment_ids"))
    scope = visibility_scope(request).experiments

    def load(conn):
        infos = store.load_trace_infos(conn, visible_trace_ids(conn, trace_ids, scope))
        if "experiment_ids" in args:
            infos = [i for i in infos if i["trace_location"]["mlflow_experiment"]["experiment_id"] in experiment_ids]
        return infos

    return await in_transaction(request, load)


@router_v3.get("/traces/batchGet", operation_id="traces.batch_get")
async def batch_get_traces(request: Request):
    """BatchGetTraces: several traces with spans; unknown or invisible ids are left out."""
    infos = await _visible_infos(request)
    spans = await in_transaction(request, lambda conn: load_spans(conn, [i["trace_id"] for i in infos]))

    def with_artifacts() -> list[dict]:
        return [{"trace_info": i, "spans": with_artifact_spans(request, i, spans[i["trace_id"]])} for i in infos]

    return ok({"traces": await run_in_threadpool(with_artifacts)})


# The same read as batchGet without spans; it shares batchGet's operation id (and so its permission).
@router_v3.get("/traces/batchGetInfos", operation_id="traces.batch_get", include_in_schema=False)
async def batch_get_trace_infos(request: Request):
    """BatchGetTraceInfos: several trace infos (no spans); unknown or invisible ids are left out."""
    return ok({"trace_infos": await _visible_infos(request)})


@router_v3.post("/traces/search", operation_id="traces.search")
async def search(request: Request):
    """SearchTracesV3 over MLflow experiment locations (or the v2 ``experiment_ids``)."""
    args = await request_args(request)
    experiment_ids = list(args.str_list("experiment_ids"))
    for index, location in enumerate(args.obj_list("locations")):
        experiment = location.get("mlflow_experiment")
        if not isinstance(experiment, dict) or not isinstance(experiment.get("experiment_id"), str):
            raise invalid_parameter(f"Invalid value for parameter 'locations[{index}]': this server searches "
                                    "MLflow experiment locations only.")
        experiment_ids.append(experiment["experiment_id"])
    fields = {
        "experiment_ids": experiment_ids,
        "filter_string": args.str("filter"),
        "max_results": args.int("max_results"),
        "order_by": args.str_list("order_by"),
        "page_token": args.str("page_token", max_length=512),
        "scope": visibility_scope(request).experiments,
    }
    infos, token = await in_transaction(request, lambda conn: search_traces(conn, **fields))
    payload: dict = {"traces": infos}
    if token:
        payload["next_page_token"] = token
    return ok(payload)


@router_v3.get("/traces/{trace_id}", operation_id="traces.get_info")
async def get_trace_info(request: Request, trace_id: str):
    """GetTraceInfoV3: the trace's info, tags, metadata and assessments (no spans)."""
    await request_args(request)
    info = await in_transaction(request, lambda conn: store.get_trace_info(conn, trace_id))
    return ok({"trace": {"trace_info": info}})


async def _set_tag(request: Request, trace_id: str):
    args = await request_args(request)
    key = args.str("key", required=True)
    value = args.str("value", default="")
    await in_transaction(request, lambda conn: store.set_trace_tag(conn, trace_id, key, value))
    return ok()


async def _delete_tag(request: Request, trace_id: str):
    args = await request_args(request)
    key = args.str("key", required=True)
    await in_transaction(request, lambda conn: store.delete_trace_tag(conn, trace_id, key))
    return ok()


async def _delete_traces(request: Request):
    args = await request_args(request)
    fields = {
        "experiment_id": args.str("experiment_id", required=True),
        "max_timestamp_millis": args.int("max_timestamp_millis"),
        "max_traces": args.int("max_traces"),
        "trace_ids": args.str_list("request_ids"),
    }
    deleted = await in_transaction(request, lambda conn: store.delete_traces(conn, **fields))
    return ok({"traces_deleted": deleted})


@router_v2.patch("/traces/{request_id}/tags", operation_id="traces.set_tag")
async def set_tag_v2(request: Request, request_id: str):
    """SetTraceTag."""
    return await _set_tag(request, request_id)


@router_v3.patch("/traces/{trace_id}/tags", operation_id="traces.set_tag", include_in_schema=False)
async def set_tag_v3(request: Request, trace_id: str):
    """SetTraceTagV3."""
    return await _set_tag(request, trace_id)


@router_v2.delete("/traces/{request_id}/tags", operation_id="traces.delete_tag")
async def delete_tag_v2(request: Request, request_id: str):
    """DeleteTraceTag."""
    return await _delete_tag(request, request_id)


@router_v3.delete("/traces/{trace_id}/tags", operation_id="traces.delete_tag", include_in_schema=False)
async def delete_tag_v3(request: Request, trace_id: str):
    """DeleteTraceTagV3."""
    return await _delete_tag(request, trace_id)


@router_v2.post("/traces/delete-traces", operation_id="traces.delete")
async def delete_traces_v2(request: Request):
    """DeleteTraces: by ids, or the oldest before a time."""
    return await _delete_traces(request)


@router_v3.post("/traces/delete-traces", operation_id="traces.delete", include_in_schema=False)
async def delete_traces_v3(request: Request):
    """DeleteTracesV3."""
    return await _delete_traces(request)


@router_v2.post("/traces/link-to-run", operation_id="traces.link_to_run")
async def link_traces_to_run(request: Request):
    """LinkTracesToRun: the traces are then among the run's traces (a search with ``run_id``)."""
    args = await request_args(request)
    await in_transaction(request, lambda conn: store.link_traces_to_run(conn, args.raw("trace_ids"),
                                                                        args.raw("run_id")))
    return ok({})


router_v3.include_router(assessments.router)
