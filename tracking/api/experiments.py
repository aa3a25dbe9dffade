"""REST endpoints of MLflow's experiment API (create, get, get-by-name, update, delete, restore, tags)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from tracking.api.body import Args, request_args
from tracking.api.dispatch import point_read
from tracking.api.responses import ok
from tracking.errors import invalid_parameter
from tracking.scope import request_workspace
from tracking.services import Lifecycle, tracking_of
from tracking.store import experiments as store
from tracking.store.transaction import read_connection, write_transaction

router = APIRouter()


async def parsed_args(request: Request) -> Args:
    """The request's fields, read before the (sync, thread-pooled) handler runs."""
    return await request_args(request)


def key_value_pairs(items: list[dict[str, Any]], field: str) -> list[tuple[str, str]]:
    """``[{"key": ..., "value": ...}]`` as pairs; keys and values must be strings."""
    pairs = []
    for i, item in enumerate(items):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid_parameter(f"Missing value for required parameter '{field}[{i}].key'.")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise invalid_parameter(f"Invalid value for parameter '{field}[{i}].value' supplied: expected a string.")
        pairs.append((key, value))
    return pairs


def _experiment_id(args: Args) -> int:
    return store.parse_experiment_id(args.str("experiment_id", required=True, allow_empty=False))


@router.post("/experiments/create", operation_id="experiments.create")
def create_experiment(request: Request, args: Args = Depends(parsed_args)):
    """Create an experiment; answers ``{"experiment_id": ...}``."""
    name = args.str("name", required=True, allow_empty=False)
    location = args.str("artifact_location") or None
    tags = key_value_pairs(args.obj_list("tags"), "tags")
    tracking = tracking_of(request)
    with write_transaction(tracking.engine, lambda: store.already_exists_error(name)) as conn:
        experiment_id = store.create_experiment(conn, name, location, tags, request_workspace(request))
        tracking.changed(conn, request, Lifecycle("created", "experiment", str(experiment_id), name))
    tracking.committed(request)
    return ok({"experiment_id": experiment_id})


@router.get("/experiments/get", operation_id="experiments.get")
@point_read
def get_experiment(request: Request, args: Args = Depends(parsed_args)):
    """One experiment by id, active or deleted."""
    experiment_id = _experiment_id(args)
    with read_connection(tracking_of(request).engine) as conn:
        return ok({"experiment": store.get_experiment(conn, experiment_id)})


@router.get("/experiments/get-by-name", operation_id="experiments.get_by_name")
@point_read
def get_experiment_by_name(request: Request, args: Args = Depends(parsed_args)):
    """One experiment by exact name, active or deleted."""
    name = args.str("experiment_name", required=True, allow_empty=False)
    with read_connection(tracking_of(request).engine) as conn:
        return ok({"experiment": store.get_experiment_by_name(conn, name, request_workspace(request))})


@router.post("/experiments/update", operation_id="experiments.update")
def update_experiment(request: Request, args: Args = Depends(parsed_args)):
    """Rename an active experiment."""
    experiment_id = _experiment_id(args)
    new_name = args.str("new_name", required=True, allow_empty=False)
    tracking = tracking_of(request)
    with write_transaction(tracking.engine, lambda: store.already_exists_error(new_name)) as conn:
        store.rename_experiment(conn, experiment_id, new_name)
        tracking.changed(conn, request, Lifecycle("renamed", "experiment", str(experiment_id), new_name))
    tracking.committed(request)
    return ok()


@router.post("/experiments/delete", operation_id="experiments.delete")
def delete_experiment(request: Request, args: Args = Depends(parsed_args)):
    """Soft-delete an experiment and its runs."""
    experiment_id = _experiment_id(args)
    tracking = tracking_of(request)
    with write_transaction(tracking.engine) as conn:
        store.delete_experiment(conn, experiment_id)
        tracking.changed(conn, request, Lifecycle("deleted", "experiment", str(experiment_id)))
    tracking.committed(request)
    return ok()


@router.post("/experiments/restore", operation_id="experiments.restore")
def restore_experiment(request: Request, args: Args = Depends(parsed_args)):
    """Restore a deleted experiment and its runs."""
    experiment_id = _experiment_id(args)
    tracking = tracking_of(request)
    with write_transaction(tracking.engine) as conn:
        store.restore_experiment(conn, experiment_id)
        tracking.changed(conn, request, Lifecycle("restored", "experiment", str(experiment_id)))
    tracking.committed(request)
    return ok()


@router.post("/experiments/set-experiment-tag", operation_id="experiments.set_tag")
def set_experiment_tag(request: Request, args: Args = Depends(parsed_args)):
    """Set one tag on an active experiment."""
    experiment_id = _experiment_id(args)
    key = args.str("key", required=True, allow_empty=False)
    value = args.str("value", default="")
    with write_transaction(tracking_of(request).engine) as conn:
        store.set_experiment_tag(conn, experiment_id, key, value)
    return ok()


@router.post("/experiments/delete-experiment-tag", operation_id="experiments.delete_tag")
def delete_experiment_tag(request: Request, args: Args = Depends(parsed_args)):
    """Remove one tag from an active experiment."""
    experiment_id = _experiment_id(args)
    key = args.str("key", required=True, allow_empty=False)
    with write_transaction(tracking_of(request).engine) as conn:
        store.delete_experiment_tag(conn, experiment_id, key)
    return ok()
