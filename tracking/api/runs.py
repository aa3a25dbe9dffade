"""REST endpoints of MLflow's run API: lifecycle, tags, params, metrics, batches, inputs, outputs, history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from tracking.api.body import Args, to_double
from tracking.api.dispatch import point_read, quick_write
from tracking.api.experiments import key_value_pairs, parsed_args
from tracking.api.responses import ok
from tracking.errors import MlflowError, invalid_parameter, not_found
from tracking.services import tracking_of
from tracking.store import datasets, params
from tracking.store import metrics as metric_store
from tracking.store import runs as store
from tracking.store.experiments import parse_experiment_id
from tracking.store.metrics import MAX_RESULTS_PER_RUN, MAX_RUNS_PER_BULK_INTERVAL, Metric
from tracking.store.run_lookup import existing_run_ids, get_run_row, require_active_run
from tracking.store.transaction import read_connection, write_transaction
from tracking.store.validation import validate_batch_limits, validate_param, validate_run_id

router = APIRouter()


def _run_id(args: Args) -> str:
    """``run_id``, or the deprecated ``run_uuid`` MLflow's client still sends alongside it."""
    run_id = args.str("run_id", allow_empty=False) or args.str("run_uuid", allow_empty=False)
    if run_id is None:
        raise invalid_parameter("Missing value for required parameter 'run_id'.")
    return validate_run_id(run_id)


def _metric(fields: Args, *, timestamp_required: bool, path: str = "") -> Metric:
    try:
        key = fields.str("key", required=True, allow_empty=False)
        if "value" not in fields:
            raise invalid_parameter("Missing value for required parameter 'value'.")
        value = to_double("value", fields.raw("value"))
        timestamp = fields.int("timestamp", required=timestamp_required, default=0)
        step = fields.int("step", default=0)
        metric = Metric(key=key, value=value, timestamp=timestamp, step=step,
                        model_id=fields.str("model_id") or None, dataset_name=fields.str("dataset_name") or None,
                        dataset_digest=fields.str("dataset_digest") or None)
    except MlflowError as exc:
        if not path:
            raise
        raise invalid_parameter(f"{path}: {exc.message}") from exc
    return metric_store.validate_metric(metric, path)


@router.post("/runs/create", operation_id="runs.create")
def create_run(request: Request, args: Args = Depends(parsed_args)):
    """Create a run in an active experiment; answers the full run."""
    experiment_id = parse_experiment_id(args.str("experiment_id", required=True, allow_empty=False))
    user_id = args.str("user_id", default="")
    start_time = args.int("start_time")
    run_name = args.str("run_name") or None
    tags = key_value_pairs(args.obj_list("tags"), "tags")
    with write_transaction(tracking_of(request).engine) as conn:
        run = store.create_run(conn, experiment_id, user_id, start_time, tags, run_name)
    return ok({"run": run})


@router.get("/runs/get", operation_id="runs.get")
@point_read
def get_run(request: Request, args: Args = Depends(parsed_args)):
    """One run with its latest metrics, params, tags, inputs and outputs."""
    run_id = _run_id(args)
    with read_connection(tracking_of(request).engine) as conn:
        return ok({"run": store.get_run(conn, run_id)})


@router.post("/runs/update", operation_id="runs.update")
def update_run(request: Request, args: Args = Depends(parsed_args)):
    """Change an active run's status, end time or name; answers the new run info."""
    run_id = _run_id(args)
    status = args.str("status")
    end_time = args.int("end_time")
    run_name = args.str("run_name") or None
    with write_transaction(tracking_of(request).engine) as conn:
        info = store.update_run(conn, run_id, status, end_time, run_name)
    return ok({"run_info": info})


@router.post("/runs/delete", operation_id="runs.delete")
def delete_run(request: Request, args: Args = Depends(parsed_args)):
    """Soft-delete a run."""
    run_id = _run_id(args)
    with write_transaction(tracking_of(request).engine) as conn:
        store.delete_run(conn, run_id)
    return ok()


@router.post("/runs/restore", operation_id="runs.restore")
def restore_run(request: Request, args: Args = Depends(parsed_args)):
    """Restore a soft-deleted run."""
    run_id = _run_id(args)
    with write_transaction(tracking_of(request).engine) as conn:
        store.restore_run(conn, run_id)
    return ok()


@router.post("/runs/set-tag", operation_id="runs.set_tag")
@quick_write
def set_tag(request: Request, args: Args = Depends(parsed_args)):
    """Set one tag on an active run (``mlflow.runName`` also renames the run)."""
    run_id = _run_id(args)
    key = args.str("key", required=True, allow_empty=False)
    value = args.str("value", default="")
    checked = store.check_run_tags([(key, value)], prefix="")
    with write_transaction(tracking_of(request).engine) as conn:
        store.set_tags(conn, require_active_run(conn, run_id), checked)
    return ok()


@router.post("/runs/delete-tag", operation_id="runs.delete_tag")
def delete_tag(request: Request, args: Args = Depends(parsed_args)):
    """Remove one tag from an active run."""
    run_id = _run_id(args)
    key = args.str("key", required=True, allow_empty=False)
    with write_transaction(tracking_of(request).engine) as conn:
        store.delete_tag(conn, run_id, key)
    return ok()


@router.post("/runs/log-metric", operation_id="runs.log_metric")
@quick_write
def log_metric(request: Request, args: Args = Depends(parsed_args)):
    """Append one metric point to an active run."""
    run_id = _run_id(args)
    metric = _metric(args, timestamp_required=True)
    with write_transaction(tracking_of(request).engine) as conn:
        require_active_run(conn, run_id)
        metric_store.log_metrics(conn, run_id, [metric])
    return ok()


@router.post("/runs/log-parameter", operation_id="runs.log_param")
@quick_write
def log_param(request: Request, args: Args = Depends(parsed_args)):
    """Log one param on an active run; a different value for a logged key is refused."""
    run_id = _run_id(args)
    key, value = validate_param(args.str("key", required=True, allow_empty=False), args.str("value", default=""))
    with write_transaction(tracking_of(request).engine) as conn:
        require_active_run(conn, run_id)
        params.log_params(conn, run_id, {key: value})
    return ok()


def _batch_params(items: list[dict[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    duplicates = []
    for i, (key, value) in enumerate(key_value_pairs(items, "params")):
        key, value = validate_param(key, value, f"params[{i}]")
        if key in values:
            duplicates.append(key)
        values[key] = value
    if duplicates:
        raise invalid_parameter(
            f"Duplicate parameter keys have been submitted: {duplicates}. Please ensure the request contains "
            "only one param value per param key.")
    return values


@router.post("/runs/log-batch", operation_id="runs.log_batch")
@quick_write
def log_batch(request: Request, args: Args = Depends(parsed_args)):
    """Log metrics, params and tags on an active run in one transaction: all of them, or none."""
    run_id = _run_id(args)
    raw_metrics, raw_params, raw_tags = args.obj_list("metrics"), args.obj_list("params"), args.obj_list("tags")
    validate_batch_limits(len(raw_metrics), len(raw_params), len(raw_tags))
    batch = [_metric(Args(m), timestamp_required=False, path=f"metrics[{i}]") for i, m in enumerate(raw_metrics)]
    param_values = _batch_params(raw_params)
    tag_values = store.check_run_tags(key_value_pairs(raw_tags, "tags"))
    with write_transaction(tracking_of(request).engine) as conn:
        run = require_active_run(conn, run_id)
        params.log_params(conn, run_id, param_values)
        metric_store.log_metrics(conn, run_id, batch)
        store.set_tags(conn, run, tag_values)
    return ok()


@router.post("/runs/log-inputs", operation_id="runs.log_inputs")
def log_inputs(request: Request, args: Args = Depends(parsed_args)):
    """Link datasets (with input tags) and logged models to an active run as inputs."""
    run_id = _run_id(args)
    dataset_inputs = datasets.parse_dataset_inputs(args.obj_list("datasets"))
    model_ids = datasets.parse_model_ids(args.obj_list("models"), "models")
    with write_transaction(tracking_of(request).engine) as conn:
        datasets.log_inputs(conn, require_active_run(conn, run_id), dataset_inputs, model_ids)
    return ok()


@router.post("/runs/outputs", operation_id="runs.log_outputs")
def log_outputs(request: Request, args: Args = Depends(parsed_args)):
    """Record logged models as outputs of an active run."""
    run_id = _run_id(args)
    if "models" not in args:
        raise invalid_parameter("Missing value for required parameter 'models'.")
    models = datasets.parse_model_outputs(args.obj_list("models"))
    with write_transaction(tracking_of(request).engine) as conn:
        datasets.log_outputs(conn, require_active_run(conn, run_id), models)
    return ok()


@router.get("/metrics/get-history", operation_id="metrics.get_history")
def get_metric_history(request: Request, args: Args = Depends(parsed_args)):
    """All points of one metric of a run, paged when ``max_results`` is given."""
    run_id = _run_id(args)
    key = args.str("metric_key", required=True, allow_empty=False)
    max_results = args.int("max_results", minimum=1)
    page_token = args.str("page_token") or None
    with read_connection(tracking_of(request).engine) as conn:
        get_run_row(conn, run_id)
        points, token = metric_store.get_metric_history(conn, run_id, key, max_results, page_token)
    payload: dict[str, Any] = {"metrics": points}
    if token:
        payload["next_page_token"] = token
    return ok(payload)


@router.get("/metrics/get-history-bulk-interval", operation_id="metrics.get_history_bulk_interval")
def get_metric_history_bulk_interval(request: Request, args: Args = Depends(parsed_args)):
    """A sample of one metric's history for up to 100 runs (MLflow's charts use this)."""
    run_ids = args.str_list("run_ids", required=True)
    if not run_ids:
        raise invalid_parameter("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_RUNS_PER_BULK_INTERVAL:
        raise invalid_parameter(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_PER_BULK_INTERVAL} run_ids. "
            f"Received {len(run_ids)} run_ids.")
    for run_id in run_ids:
        validate_run_id(run_id, "run_ids")
    key = args.str("metric_key", required=True, allow_empty=False)
    max_results = args.int("max_results", default=MAX_RESULTS_PER_RUN)
    if not 1 <= max_results <= MAX_RESULTS_PER_RUN:
        raise invalid_parameter(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
    start_step, end_step = args.int("start_step"), args.int("end_step")
    if (start_step is None) != (end_step is None):
        raise invalid_parameter("If either start step or end step are specified, both must be specified.")
    if start_step is not None and start_step > end_step:
        raise invalid_parameter("end_step must be greater than start_step. "
                                f"Found start_step={start_step} and end_step={end_step}.")
    with read_connection(tracking_of(request).engine) as conn:
        missing = set(run_ids) - existing_run_ids(conn, run_ids)
        if missing:
            raise not_found(f"Run with id={sorted(missing)[0]} not found")
        points = metric_store.sample_metric_history(conn, run_ids, key, max_results, start_step, end_step)
    return ok({"metrics": points})
