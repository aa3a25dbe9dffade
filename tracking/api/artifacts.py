"""Artifact endpoints: MLflow's artifact proxy (``/mlflow-artifacts``), the UI's listing by run, downloads.

Every client-given path goes through :mod:`tracking.artifacts.paths` before any storage call, and
storage never follows a symlink. Uploads stream to storage in bounded chunks; nothing reads a whole body.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.body import request_args
from tracking.api.responses import ok
from tracking.artifacts.download import download_response
from tracking.artifacts.paths import ArtifactPath, parse_artifact_path, split_relative_path
from tracking.artifacts.repository import ArtifactEntry, ArtifactRepository
from tracking.artifacts.run_locations import run_artifact_root
from tracking.artifacts.storage import repository_for_root
from tracking.errors import MlflowError, invalid_parameter
from tracking.services import tracking_of

proxy_router = APIRouter()  # /api/2.0/mlflow-artifacts/...
ui_router = APIRouter()  # /api/2.0/mlflow/artifacts/list (UI listing by run)
root_router = APIRouter()  # /get-artifact

# Body chunks from the server are small (~64 KiB); batching them keeps thread hops per upload low
# while memory stays bounded by this size.
WRITE_BATCH_BYTES = 1024 * 1024
# MLflow's client matches this message's prefix to fall back to a plain PUT (http_artifact_repo.py).
MULTIPART_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"


def artifact_repository(request: Request) -> ArtifactRepository:
    """The repository behind this app's artifact root."""
    return repository_for_root(tracking_of(request).artifact_root)


def max_artifact_bytes(request: Request) -> int:
    """The upload limit the composition root gave tracking (5 GiB unless configured)."""
    return tracking_of(request).max_artifact_bytes


def _too_large(limit: int) -> MlflowError:
    return MlflowError(f"The artifact is larger than this server's limit of {limit} bytes.",
                       "RESOURCE_EXHAUSTED", status=413)


def _file_infos(entries: list[ArtifactEntry], prefix: str = "") -> list[dict]:
    files = []
    for entry in entries:
        info: dict = {"path": f"{prefix}/{entry.name}" if prefix else entry.name, "is_dir": entry.is_dir}
        if entry.file_size is not None:
            info["file_size"] = entry.file_size
        files.append(info)
    return files


# --- /api/2.0/mlflow-artifacts: the proxy MLflow's client uses for mlflow-artifacts:/ URIs ---------


@proxy_router.get("/artifacts", operation_id="artifacts.list")
async def list_artifacts(request: Request):
    """List a directory; entry paths are names relative to it, as MLflow's server answers."""
    args = await request_args(request)
    location = parse_artifact_path(args.str("path", default=""), allow_trailing_slash=True)
    entries = await run_in_threadpool(artifact_repository(request).list_dir, location)
    return ok({"files": _file_infos(entries)} if entries else {})


@proxy_router.get("/artifacts/{artifact_path:path}", operation_id="artifacts.get")
def get_artifact(request: Request, artifact_path: str):
    """Download one file as an attachment."""
    location = parse_artifact_path(artifact_path)
    reader = artifact_repository(request).open_reader(location)
    return download_response(reader, location.name)


@proxy_router.put("/artifacts/{artifact_path:path}", operation_id="artifacts.put")
async def put_artifact(request: Request, artifact_path: str):
    """Stream the body to a temp file beside the destination, then rename it into place."""
    location = parse_artifact_path(artifact_path, for_write=True)
    limit = max_artifact_bytes(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise invalid_parameter("Invalid Content-Length header.")
        if int(declared) > limit:
            raise _too_large(limit)
    writer = await run_in_threadpool(artifact_repository(request).open_writer, location)
    try:
        received = 0
        batch = bytearray()
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            batch += chunk
            if len(batch) >= WRITE_BATCH_BYTES:
                await run_in_threadpool(writer.write, batch)
                batch.clear()
        if batch:
            await run_in_threadpool(writer.write, batch)
        await run_in_threadpool(writer.commit)
    except BaseException:
        # Also on client disconnect and cancellation: no partial file (or pending S3 multipart upload) is
        # left behind. The abort may be a network call, so it runs on a thread, shielded from the cancellation.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(writer.abort)
        raise
    return ok({})


@proxy_router.delete("/artifacts/{artifact_path:path}", operation_id="artifacts.delete")
def delete_artifact(request: Request, artifact_path: str):
    """Delete a file or a directory tree inside one run's, model's or trace's artifacts."""
    location = parse_artifact_path(artifact_path, allow_trailing_slash=True)
    artifact_repository(request).delete(location)
    return ok({})


async def _multipart(request: Request, artifact_path: str, required: tuple[str, ...]) -> None:
    # The same checks, in the same order, as MLflow's handlers: path, then body, then repository support.
    parse_artifact_path(artifact_path, allow_trailing_slash=True)
    args = await request_args(request)
    for name in required:
        args.str(name, required=True)
    if "num_parts" in args:
        args.int("num_parts", minimum=1, maximum=10_000)
    # Not offered for any store, S3 included: MLflow's protocol hands the client presigned part URLs that
    # skip this gateway's authorization and upload limit. The client then falls back to a plain PUT,
    # which the S3 repository itself sends as a multipart upload.
    raise MlflowError(MULTIPART_UNSUPPORTED, "NOT_IMPLEMENTED")


@proxy_router.post("/mpu/create/{artifact_path:path}", operation_id="artifacts.mpu_create")
async def create_multipart_upload(request: Request, artifact_path: str):
    """MLflow's multipart upload: 501 unless the store supports it (server-info says it does not)."""
    await _multipart(request, artifact_path, ("path",))


@proxy_router.post("/mpu/complete/{artifact_path:path}", operation_id="artifacts.mpu_complete")
async def complete_multipart_upload(request: Request, artifact_path: str):
    """Complete a multipart upload (501 for stores without multipart support)."""
    await _multipart(request, artifact_path, ("path",))


@proxy_router.post("/mpu/abort/{artifact_path:path}", operation_id="artifacts.mpu_abort")
async def abort_multipart_upload(request: Request, artifact_path: str):
    """Abort a multipart upload (501 for stores without multipart support)."""
    await _multipart(request, artifact_path, ("path",))


# --- By run: the UI's listing and download ---------------------------------------------------------


async def _run_and_relative(request: Request, *, path_required: bool) -> tuple[str, tuple[str, ...]]:
    args = await request_args(request)
    run_id = args.str("run_id", max_length=256) or args.str("run_uuid", max_length=256)
    if not run_id:
        raise invalid_parameter(
            "Missing value for required parameter 'run_id'. "
            "See the API docs for more information about request parameters."
        )
    raw_path = args.str("path", required=path_required, default="")
    # The path is checked before the run is looked up, as MLflow's handlers do.
    return run_id, split_relative_path(raw_path, allow_trailing_slash=not path_required)


def _run_location(request: Request, run_id: str, relative: tuple[str, ...]) -> tuple[ArtifactPath, str]:
    root, artifact_uri = run_artifact_root(tracking_of(request).engine, run_id)
    return root.child(relative), artifact_uri


@ui_router.get("/artifacts/list", operation_id="artifacts.list_for_run")
async def list_artifacts_for_run(request: Request):
    """A run's artifacts under ``path``, with paths relative to the run's artifact root."""
    run_id, relative = await _run_and_relative(request, path_required=False)

    def load():
        location, artifact_uri = _run_location(request, run_id, relative)
        return artifact_uri, artifact_repository(request).list_dir(location)

    artifact_uri, entries = await run_in_threadpool(load)
    payload: dict = {"root_uri": artifact_uri}
    if entries:
        payload["files"] = _file_infos(entries, "/".join(relative))
    return ok(payload)


@root_router.get("/get-artifact", operation_id="artifacts.get_for_run")
async def get_artifact_for_run(request: Request):
    """Download one file of a run as an attachment."""
    run_id, relative = await _run_and_relative(request, path_required=True)

    def open_file():
        location, _ = _run_location(request, run_id, relative)
        if not relative:
            raise invalid_parameter("Artifact path refers to a directory, not a file: ''")
        return location, artifact_repository(request).open_reader(location)

    location, reader = await run_in_threadpool(open_file)
    return download_response(reader, location.name)
