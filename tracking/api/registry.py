"""REST endpoints of the model registry (MLflow's ModelRegistryService) and the version artifact download.

Prompts (MLflow 3) ride on the same endpoints: a prompt is a registered model tagged
``mlflow.prompt.is_prompt=true`` whose versions keep their template in tags.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from tracking.api.body import Args, request_args
from tracking.api.dispatch import point_read, search_handler
from tracking.api.responses import JSONBody, ok
from tracking.errors import invalid_parameter
from tracking.scope import request_workspace, visibility_scope
from tracking.services import Lifecycle, tracking_of
from tracking.store import registry, registry_search, registry_versions
from tracking.store.registry_artifacts import send_version_artifact
from tracking.store.registry_validation import validate_tags

router = APIRouter()  # /api/2.0/mlflow/registered-models/..., /model-versions/...
root_router = APIRouter()  # /model-versions/get-artifact

_RM = "/registered-models"
_MV = "/model-versions"


def _has_nul(value: object) -> bool:
    # Iterative walk; body.py already bounds the nesting depth.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def registry_args(request: Request) -> Args:
    """The request's fields; a NUL character anywhere is refused (PostgreSQL cannot store it in text)."""
    args = await request_args(request)
    if _has_nul(dict(args.data)):
        raise invalid_parameter("Request fields cannot contain NUL characters.")
    return args


ARGS = Depends(registry_args)


def _name(args: Args, field: str = "name") -> str:
    return args.str(field, required=True)


def _version(args: Args) -> str:
    # version is a string in the proto; clients also send a JSON number.
    value = args.raw("version")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return args.str("version", required=True)


# Registered models ------------------------------------------------------------------------------

@router.post(f"{_RM}/create", operation_id="registered_models.create")
def create_registered_model(request: Request, args: Args = ARGS) -> JSONBody:
    """Create a registered model (name, tags, description)."""
    name, tags = _name(args), validate_tags(args.obj_list("tags"))
    description = args.str("description")
    tracking, workspace = tracking_of(request), request_workspace(request)
    with tracking.engine.begin() as conn:
        model = registry.create_registered_model(conn, name, tags, description, workspace=workspace)
        tracking.changed(conn, request, Lifecycle("created", "registered_model",
                                                  registry.stable_model_id(conn, name, workspace=workspace), name))
    tracking.committed(request)
    return ok({"registered_model": model})


@router.get(f"{_RM}/get", operation_id="registered_models.get")
@point_read
def get_registered_model(request: Request, args: Args = ARGS) -> JSONBody:
    """One registered model with tags, aliases and latest versions."""
    name = _name(args)
    with tracking_of(request).engine.connect() as conn:
        return ok({"registered_model": registry.model_json(conn, name, workspace=request_workspace(request))})


@router.post(f"{_RM}/rename", operation_id="registered_models.rename")
def rename_registered_model(request: Request, args: Args = ARGS) -> JSONBody:
    """Rename a registered model; its versions, tags and aliases follow."""
    name, new_name = _name(args), args.str("new_name")
    tracking, workspace = tracking_of(request), request_workspace(request)
    with tracking.engine.begin() as conn:
        model = registry.rename_registered_model(conn, name, new_name, workspace=workspace)
        tracking.changed(conn, request, Lifecycle("renamed", "registered_model",
                                                  registry.stable_model_id(conn, model["name"], workspace=workspace),
                                                  model["name"]))
    tracking.committed(request)
    return ok({"registered_model": model})


@router.patch(f"{_RM}/update", operation_id="registered_models.update")
def update_registered_model(request: Request, args: Args = ARGS) -> JSONBody:
    """Replace a registered model's description."""
    name, description = _name(args), args.str("description")
    with tracking_of(request).engine.begin() as conn:
        return ok({"registered_model": registry.update_registered_model(conn, name, description,
                                                                                 workspace=request_workspace(request))})


@router.delete(f"{_RM}/delete", operation_id="registered_models.delete")
def delete_registered_model(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete a registered model with its versions, tags and aliases."""
    name = _name(args)
    tracking = tracking_of(request)
    with tracking.engine.begin() as conn:
        model_id = registry.delete_registered_model(conn, name, workspace=request_workspace(request))
        tracking.changed(conn, request, Lifecycle("deleted", "registered_model", model_id, name))
    tracking.committed(request)
    return ok({})


@router.get(f"{_RM}/search", operation_id="registered_models.search")
@router.post(f"{_RM}/search", operation_id="registered_models.search_via_post")
@search_handler
def search_registered_models(request: Request, args: Args = ARGS) -> JSONBody:
    """Registered models matching a filter, ordered and paginated (prompts only when asked for)."""
    scope = visibility_scope(request).registered_models
    with tracking_of(request).engine.connect() as conn:
        page = registry_search.search_registered_models(
            conn, filter_string=args.str("filter"), max_results=args.int("max_results"),
            order_by=args.str_list("order_by"), page_token=args.str("page_token"), scope=scope)
    payload: dict = {}
    if page.items:
        payload["registered_models"] = page.items
    if page.next_page_token:
        payload["next_page_token"] = page.next_page_token
    return ok(payload)


@router.post(f"{_RM}/set-tag", operation_id="registered_models.set_tag")
def set_registered_model_tag(request: Request, args: Args = ARGS) -> JSONBody:
    """Set one tag of a registered model."""
    name, key, value = _name(args), args.str("key", required=True), args.str("value")
    with tracking_of(request).engine.begin() as conn:
        registry.set_registered_model_tag(conn, name, key, value, workspace=request_workspace(request))
    return ok({})


@router.delete(f"{_RM}/delete-tag", operation_id="registered_models.delete_tag")
def delete_registered_model_tag(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete one tag of a registered model."""
    name, key = _name(args), args.str("key", required=True)
    with tracking_of(request).engine.begin() as conn:
        registry.delete_registered_model_tag(conn, name, key, workspace=request_workspace(request))
    return ok({})


@router.post(f"{_RM}/get-latest-versions", operation_id="registered_models.get_latest_versions")
@router.get(f"{_RM}/get-latest-versions", operation_id="registered_models.get_latest_versions_via_get")
def get_latest_versions(request: Request, args: Args = ARGS) -> JSONBody:
    """The newest version per requested stage."""
    name, stages = _name(args), args.str_list("stages")
    with tracking_of(request).engine.connect() as conn:
        versions = registry.get_latest_versions(conn, name, stages, workspace=request_workspace(request))
    return ok({"model_versions": versions} if versions else {})


@router.post(f"{_RM}/alias", operation_id="registered_models.set_alias")
def set_registered_model_alias(request: Request, args: Args = ARGS) -> JSONBody:
    """Point an alias at a version."""
    name, alias, version = _name(args), args.str("alias", required=True), _version(args)
    with tracking_of(request).engine.begin() as conn:
        registry.set_alias(conn, name, alias, version, workspace=request_workspace(request))
    return ok({})


@router.delete(f"{_RM}/alias", operation_id="registered_models.delete_alias")
def delete_registered_model_alias(request: Request, args: Args = ARGS) -> JSONBody:
    """Remove an alias."""
    name, alias = _name(args), args.str("alias", required=True)
    with tracking_of(request).engine.begin() as conn:
        registry.delete_alias(conn, name, alias, workspace=request_workspace(request))
    return ok({})


@router.get(f"{_RM}/alias", operation_id="registered_models.get_version_by_alias")
def get_model_version_by_alias(request: Request, args: Args = ARGS) -> JSONBody:
    """The version an alias points to (``latest`` is the highest version)."""
    name, alias = _name(args), args.str("alias", required=True)
    with tracking_of(request).engine.connect() as conn:
        return ok({"model_version": registry_versions.get_version_by_alias(
            conn, name, alias, workspace=request_workspace(request))})


# Model versions ---------------------------------------------------------------------------------

@router.post(f"{_MV}/create", operation_id="model_versions.create")
def create_model_version(request: Request, args: Args = ARGS) -> JSONBody:
    """Register a new version of a model from a checked source."""
    new = registry_versions.NewVersion(
        name=_name(args), source=args.str("source", required=True), run_id=args.str("run_id"),
        tags=validate_tags(args.obj_list("tags")), run_link=args.str("run_link"),
        description=args.str("description"), model_id=args.str("model_id"))
    with tracking_of(request).engine.begin() as conn:
        return ok({"model_version": registry_versions.create_model_version(
            conn, new, workspace=request_workspace(request))})


@router.get(f"{_MV}/get", operation_id="model_versions.get")
@point_read
def get_model_version(request: Request, args: Args = ARGS) -> JSONBody:
    """One model version."""
    name, version = _name(args), _version(args)
    with tracking_of(request).engine.connect() as conn:
        return ok({"model_version": registry_versions.get_model_version(
            conn, name, version, workspace=request_workspace(request))})


@router.patch(f"{_MV}/update", operation_id="model_versions.update")
def update_model_version(request: Request, args: Args = ARGS) -> JSONBody:
    """Replace a version's description."""
    name, version, description = _name(args), _version(args), args.str("description")
    with tracking_of(request).engine.begin() as conn:
        return ok({"model_version": registry_versions.update_model_version(
            conn, name, version, description, workspace=request_workspace(request))})


@router.delete(f"{_MV}/delete", operation_id="model_versions.delete")
def delete_model_version(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete a version (its number is never reused)."""
    name, version = _name(args), _version(args)
    with tracking_of(request).engine.begin() as conn:
        registry_versions.delete_model_version(conn, name, version, workspace=request_workspace(request))
    return ok({})


@router.get(f"{_MV}/search", operation_id="model_versions.search")
@router.post(f"{_MV}/search", operation_id="model_versions.search_via_post")
@search_handler
def search_model_versions(request: Request, args: Args = ARGS) -> JSONBody:
    """Model versions matching a filter, ordered and paginated."""
    scope = visibility_scope(request).registered_models
    with tracking_of(request).engine.connect() as conn:
        page = registry_search.search_model_versions(
            conn, filter_string=args.str("filter"), max_results=args.int("max_results"),
            order_by=args.str_list("order_by"), page_token=args.str("page_token"), scope=scope)
    payload: dict = {}
    if page.items:
        payload["model_versions"] = page.items
    if page.next_page_token:
        payload["next_page_token"] = page.next_page_token
    return ok(payload)


@router.post(f"{_MV}/set-tag", operation_id="model_versions.set_tag")
def set_model_version_tag(request: Request, args: Args = ARGS) -> JSONBody:
    """Set one tag of a version."""
    name, version = _name(args), _version(args)
    key, value = args.str("key", required=True), args.str("value")
    with tracking_of(request).engine.begin() as conn:
        registry_versions.set_model_version_tag(conn, name, version, key, value,
                                                workspace=request_workspace(request))
    return ok({})


@router.delete(f"{_MV}/delete-tag", operation_id="model_versions.delete_tag")
def delete_model_version_tag(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete one tag of a version."""
    name, version, key = _name(args), _version(args), args.str("key", required=True)
    with tracking_of(request).engine.begin() as conn:
        registry_versions.delete_model_version_tag(conn, name, version, key,
                                                   workspace=request_workspace(request))
    return ok({})


@router.post(f"{_MV}/transition-stage", operation_id="model_versions.transition_stage")
def transition_model_version_stage(request: Request, args: Args = ARGS) -> JSONBody:
    """Move a version to None/Staging/Production/Archived."""
    name, version, stage = _name(args), _version(args), args.str("stage", required=True)
    archive = args.bool("archive_existing_versions", default=False)
    with tracking_of(request).engine.begin() as conn:
        version_json = registry_versions.transition_stage(conn, name, version, stage, archive,
                                                          workspace=request_workspace(request))
    return ok({"model_version": version_json})


@router.get(f"{_MV}/get-download-uri", operation_id="model_versions.get_download_uri")
def get_model_version_download_uri(request: Request, args: Args = ARGS) -> JSONBody:
    """Where a version's artifacts are."""
    name, version = _name(args), _version(args)
    with tracking_of(request).engine.connect() as conn:
        return ok({"artifact_uri": registry_versions.download_uri(conn, name, version,
                                                                  workspace=request_workspace(request))})


@root_router.get(f"{_MV}/get-artifact", operation_id="model_versions.get_artifact")
def get_model_version_artifact(request: Request, args: Args = ARGS) -> Response:
    """A file of a version's artifacts, when they live under this server's artifact root."""
    name, version, path = _name(args), _version(args), args.str("path", required=True)
    tracking = tracking_of(request)
    with tracking.engine.connect() as conn:
        location = registry_versions.download_uri(conn, name, version, workspace=request_workspace(request))
    return send_version_artifact(tracking.artifact_root, location, path)
