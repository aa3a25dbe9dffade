"""REST endpoints: logged models (``/api/2.0/mlflow/logged-models``) and their artifacts."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.body import request_args
from tracking.api.in_transaction import in_transaction
from tracking.api.responses import ok
from tracking.artifacts.download import download_response
from tracking.artifacts.paths import ArtifactOwner, ArtifactPath, split_relative_path
from tracking.artifacts.run_locations import served_location
from tracking.artifacts.storage import repository_for_root
from tracking.errors import invalid_parameter
from tracking.scope import visibility_scope
from tracking.services import tracking_of
from tracking.store import logged_models as store
from tracking.store.logged_model_search import search_logged_models

router = APIRouter()
def _same_model_id(args, model_id: str) -> None:
    # The client repeats the id in the body; a different one would make the request ambiguous.
    body_id = args.str("model_id")
    if body_id and body_id != model_id:
        raise invalid_parameter(f"The model_id in the body ({body_id!r}) differs from the one in the path.")


@router.post("/logged-models", operation_id="logged_models.create")
async def create_logged_model(request: Request):
    """CreateLoggedModel: a PENDING model under an experiment, with params and tags."""
    args = await request_args(request)
    fields = {
        "experiment_id": args.str("experiment_id", required=True),
        "name": args.str("name", allow_empty=False),
        "model_type": args.str("model_type", allow_empty=False),
        "source_run_id": args.str("source_run_id", allow_empty=False),
        "params": args.obj_list("params"),
        "tags": args.obj_list("tags"),
    }
    model = await in_transaction(request, lambda conn: store.create_logged_model(conn, **fields))
    return ok({"model": model})


@router.post("/logged-models/search", operation_id="logged_models.search")
async def search(request: Request):
    """SearchLoggedModels within the experiments the caller may see."""
    args = await request_args(request)
    fields = {
        "experiment_ids": args.str_list("experiment_ids", required=True),
        "filter_string": args.str("filter"),
        "datasets": args.obj_list("datasets"),
        "max_results": args.int("max_results"),
        "order_by": args.obj_list("order_by"),
        "page_token": args.str("page_token", max_length=512),
        "scope": visibility_scope(request).experiments,
    }
    models, token = await in_transaction(request, lambda conn: search_logged_models(conn, **fields))
    payload: dict = {"models": models}
    if token:
        payload["next_page_token"] = token
    return ok(payload)


@router.get("/logged-models/{model_id}", operation_id="logged_models.get")
async def get_logged_model(request: Request, model_id: str):
    """GetLoggedModel (``allow_deleted=true`` also finds deleted models)."""
    args = await request_args(request)
    allow_deleted = bool(args.bool("allow_deleted", default=False))
    model = await in_transaction(
        request, lambda conn: store.get_logged_model(conn, model_id, allow_deleted=allow_deleted))
    return ok({"model": model})


@router.patch("/logged-models/{model_id}", operation_id="logged_models.finalize")
async def finalize_logged_model(request: Request, model_id: str):
    """FinalizeLoggedModel: set the status (READY once the artifacts are uploaded)."""
    args = await request_args(request)
    _same_model_id(args, model_id)
    if "status" not in args:
        raise invalid_parameter("Missing value for required parameter 'status'.")
    status = args.raw("status")
    model = await in_transaction(request, lambda conn: store.finalize_logged_model(conn, model_id, status))
    return ok({"model": model})


@router.delete("/logged-models/{model_id}", operation_id="logged_models.delete")
async def delete_logged_model(request: Request, model_id: str):
    """DeleteLoggedModel (soft delete)."""
    args = await request_args(request)
    _same_model_id(args, model_id)
    await in_transaction(request, lambda conn: store.delete_logged_model(conn, model_id))
    return ok()


@router.patch("/logged-models/{model_id}/tags", operation_id="logged_models.set_tags")
async def set_tags(request: Request, model_id: str):
    """SetLoggedModelTags: insert or overwrite tags."""
    args = await request_args(request)
    _same_model_id(args, model_id)
    tags = args.obj_list("tags")
    await in_transaction(request, lambda conn: store.set_logged_model_tags(conn, model_id, tags))
    return ok()


@router.delete("/logged-models/{model_id}/tags/{tag_key:path}", operation_id="logged_models.delete_tag")
async def delete_tag(request: Request, model_id: str, tag_key: str):
    """DeleteLoggedModelTag."""
    await request_args(request)
    await in_transaction(request, lambda conn: store.delete_logged_model_tag(conn, model_id, tag_key))
    return ok()


@router.post("/logged-models/{model_id}/params", operation_id="logged_models.log_params")
async def log_params(request: Request, model_id: str):
    """LogLoggedModelParamsRequest: add params to a model."""
    args = await request_args(request)
    _same_model_id(args, model_id)
    params = args.obj_list("params")
    await in_transaction(request, lambda conn: store.log_logged_model_params(conn, model_id, params))
    return ok()


async def _model_artifacts(request: Request, model_id: str) -> tuple[ArtifactPath, str]:
    """The model's artifact directory under this server's root, and its artifact URI."""
    model = await in_transaction(request, lambda conn: store.get_logged_model(conn, model_id))
    info = model["info"]
    location = served_location(info["artifact_uri"])
    expected = ArtifactOwner(info["experiment_id"], "model", model_id)
    if location is None or location.owner != expected or location.inner != "":
        raise invalid_parameter(f"The artifacts of logged model '{model_id}' are not stored under this "
                                "server's artifact root, so this server does not serve them.")
    return location, info["artifact_uri"]


@router.get("/logged-models/{model_id}/artifacts/directories", operation_id="logged_models.list_artifacts")
async def list_artifacts(request: Request, model_id: str):
    """ListLoggedModelArtifacts: one directory of the model's artifacts, paths relative to its root."""
    args = await request_args(request)
    relative = split_relative_path(args.str("artifact_directory_path", default=""), allow_trailing_slash=True)
    root, artifact_uri = await _model_artifacts(request, model_id)
    repository = repository_for_root(tracking_of(request).artifact_root)
    entries = await run_in_threadpool(repository.list_dir, root.child(relative))
    prefix = "/".join(relative)
    files = []
    for entry in entries:
        info: dict = {"path": f"{prefix}/{entry.name}" if prefix else entry.name, "is_dir": entry.is_dir}
        if entry.file_size is not None:
            info["file_size"] = entry.file_size
        files.append(info)
    payload: dict = {"root_uri": artifact_uri}
    if files:
        payload["files"] = files
    return ok(payload)


@router.get("/logged-models/{model_id}/artifacts/files", operation_id="logged_models.get_artifact")
async def get_artifact(request: Request, model_id: str):
    """Download one file of the model's artifacts (``artifact_file_path``)."""
    args = await request_args(request)
    relative = split_relative_path(args.str("artifact_file_path", required=True, allow_empty=False))
    root, _ = await _model_artifacts(request, model_id)
    location = root.child(relative)
    repository = repository_for_root(tracking_of(request).artifact_root)
    reader = await run_in_threadpool(repository.open_reader, location)
    return download_response(reader, location.name)
