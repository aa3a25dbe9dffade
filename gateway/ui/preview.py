"""Inline preview of one run artifact: text, JSON and YAML as escaped text, images through a locked-down route.

Artifacts are attacker-controlled bytes. Text is decoded and shown through the autoescaping template,
cut at :data:`MAX_PREVIEW_BYTES`. Images are served by :func:`artifact_image` only for raster types named
by the file's extension, with ``nosniff``, ``Content-Disposition: inline`` and a sandboxing CSP, so an
HTML or SVG file renamed ``.png`` can never run script on this origin (SVG is shown as text, never as
an image). Both routes need READ on the run's experiment, like the run page.
"""

from __future__ import annotations

import json
import posixpath

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from gateway.ui.render import page
from tracking.api.artifacts import artifact_repository, get_artifact_for_run
from tracking.artifacts.download import content_disposition
from tracking.artifacts.paths import split_relative_path
from tracking.artifacts.run_locations import run_artifact_root
from tracking.errors import MlflowError
from tracking.services import tracking_of
from tracking.store.runs import runs_to_json
from tracking.store.validation import validate_run_id

router = APIRouter(include_in_schema=False)
MAX_PREVIEW_BYTES = 256 * 1024  # shown inline; the rest is a download away
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
JSON_EXTENSIONS = frozenset({".json", ".ipynb"})
TEXT_EXTENSIONS = frozenset({".txt", ".log", ".md", ".csv", ".tsv", ".yaml", ".yml", ".py", ".ini", ".toml",
                             ".cfg", ".rst", ".xml", ".html", ".htm", ".svg", ".js", ".sh", ".sql", ".r", ""})
TEXT_NAMES = frozenset({"MLmodel", "MLproject", "requirements.txt", "conda.yaml", "python_env.yaml"})
MISSING = "The requested resource does not exist."


def preview_kind(name: str) -> str | None:
    """``image``, ``json`` or ``text`` for files the run page previews inline; None otherwise."""
    ext = posixpath.splitext(name)[1].lower()
    if ext in IMAGE_TYPES:
        return "image"
    if ext in JSON_EXTENSIONS:
        return "json"
    if ext in TEXT_EXTENSIONS or name in TEXT_NAMES:
        return "text"
    return None


def _location(request: Request, run_id: str, raw_path: str):
    try:
        validate_run_id(run_id)
    except MlflowError:
        raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST") from None
    relative = split_relative_path(raw_path)
    root, _ = run_artifact_root(tracking_of(request).engine, run_id)
    return relative, root.child(relative)


def _read(request: Request, location, limit: int) -> tuple[bytes, int]:
    reader = artifact_repository(request).open_reader(location)
    try:
        size = reader.size
        chunks, remaining = [], min(size, limit)
        while remaining > 0:
            chunk = reader.read(min(65536, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        reader.close()
    return b"".join(chunks), size


@router.get("/runs/{run_id}/preview", operation_id="ui.artifact_preview")
def artifact_preview(request: Request, run_id: str) -> Response:
    """One artifact shown inline: text (JSON pretty-printed) escaped and capped, or an image."""
    raw_path = request.query_params.get("path", "")
    relative, location = _location(request, run_id, raw_path)
    name = relative[-1]
    kind = preview_kind(name)
    with tracking_of(request).engine.connect() as conn:
        found = runs_to_json(conn, [run_id])
    if not found:
        raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")
    info = found[0]["info"]
    text, truncated, size, note = None, False, None, None
    if kind in ("text", "json"):
        data, size = _read(request, location, MAX_PREVIEW_BYTES)
        truncated = size > len(data)
        text = data.decode("utf-8", errors="replace")
        if kind == "json" and not truncated:
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except ValueError:
                note = "Not valid JSON: shown as it is."
            except RecursionError:  # nested deeper than the parser (or printer) goes: still text
                note = "Nested too deeply to pretty-print: shown as it is."
    elif kind is None:
        note = "No inline preview for this kind of file; download it instead."
    path = "/".join(relative)
    folder = "/".join(relative[:-1])
    return page(request, "preview.html", title=name, info=info, path=path, folder=folder, kind=kind,
                text=text, truncated=truncated, size=size, note=note, limit=MAX_PREVIEW_BYTES)


@router.get("/runs/{run_id}/image", operation_id="ui.artifact_image")
def artifact_image(request: Request, run_id: str) -> Response:
    """A raster image artifact for the preview's <img>: a fixed image type, never rendered as a document."""
    relative, location = _location(request, run_id, request.query_params.get("path", ""))
    media_type = IMAGE_TYPES.get(posixpath.splitext(relative[-1])[1].lower())
    if media_type is None:
        raise MlflowError("Only PNG, JPEG, GIF and WebP images are shown inline.", "INVALID_PARAMETER_VALUE")
    data, size = _read(request, location, MAX_IMAGE_BYTES)
    if size > len(data):
        raise MlflowError("The image is too large to show inline; download it instead.", "INVALID_PARAMETER_VALUE")
    disposition = content_disposition(relative[-1]).replace("attachment", "inline", 1)
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, no-store"})


@router.get("/download-artifact", operation_id="ui.artifact_download")
async def download_artifact(request: Request) -> Response:
    """A run's file as an attachment (``?run_id=&path=``): the API's ``/get-artifact`` with its checks, as one of
    mlgate's pages, so it is in the workspace the pages are in (the API's download is in the header's)."""
    return await get_artifact_for_run(request)
