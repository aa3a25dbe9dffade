"""Logged models (MLflow 3's ``log_model(name=...)``): a model's own page, and the run's models on its page.

MLflow 3 stores such a model's files under the logged model (``<experiment>/models/<model id>/artifacts``),
not under the run, so the run's artifact list is empty and a model version's source is ``models:/<model id>``.
The page shows what a person looks for: the model's run, status, params, metrics and tags, its ``MLmodel``
(flavors and signature) and its files. Access is the model's experiment's (route table: READ).
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import Response

from gateway.ui.preview import MAX_PREVIEW_BYTES
from gateway.ui.render import page
from tracking.api.artifacts import artifact_repository
from tracking.artifacts.paths import ArtifactOwner
from tracking.artifacts.run_locations import served_location
from tracking.db.mlflow3_tables import logged_models
from tracking.errors import MlflowError
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json
from tracking.store.logged_models import get_logged_model, load_models

router = APIRouter(include_in_schema=False)
MAX_RUN_MODELS = 50  # models listed on a run's page
MAX_FILES = 200
STATUS = {"LOGGED_MODEL_PENDING": "pending", "LOGGED_MODEL_READY": "ready",
          "LOGGED_MODEL_UPLOAD_FAILED": "upload failed"}


def run_logged_models(conn: Connection, run_id: str, experiment_id: int) -> list[dict]:
    """The live logged models whose source is this run, in its experiment (newest first)."""
    ids = list(conn.execute(
        select(logged_models.c.model_id)
        .where(logged_models.c.source_run_id == run_id, logged_models.c.experiment_id == experiment_id,
               logged_models.c.lifecycle_stage == "active")
        .order_by(logged_models.c.creation_timestamp_ms.desc()).limit(MAX_RUN_MODELS)).scalars())
    return [m["info"] for m in load_models(conn, ids)] if ids else []


def _files(request: Request, info: dict) -> tuple[list[dict], str | None, str | None]:
    """The model's top-level files, its MLmodel text, and a problem to show instead."""
    location = served_location(info["artifact_uri"])
    if location is None or location.owner != ArtifactOwner(info["experiment_id"], "model", info["model_id"]):
        return [], None, "This model's files are not stored under this server's artifact root."
    repository = artifact_repository(request)
    try:
        entries = repository.list_dir(location)
    except MlflowError as exc:
        return [], None, exc.message
    files = [{"name": e.name, "is_dir": e.is_dir, "size": e.file_size}
             for e in sorted(entries, key=lambda e: (not e.is_dir, e.name))[:MAX_FILES]]
    mlmodel = None
    if any(f["name"] == "MLmodel" and not f["is_dir"] for f in files):
        reader = repository.open_reader(location.child(("MLmodel",)))
        try:
            mlmodel = reader.read(MAX_PREVIEW_BYTES).decode("utf-8", errors="replace")
        finally:
            reader.close()
    return files, mlmodel, None


@router.get("/logged-models/{model_id}", operation_id="ui.logged_model")
def logged_model_page(request: Request, model_id: str) -> Response:
    """One logged model: its run, status, params, metrics, tags, MLmodel (signature) and files."""
    with tracking_of(request).engine.connect() as conn:
        model = get_logged_model(conn, model_id)
        info = model["info"]
        experiment = experiments_to_json(conn, [int(info["experiment_id"])])
    files, mlmodel, problem = _files(request, info)
    data = model.get("data", {})
    return page(request, "logged_model.html", title=info.get("name") or model_id, info=info, data=data,
                model_status=STATUS.get(info.get("status", ""), info.get("status", "")),
                experiment_name=experiment[0]["name"] if experiment else info["experiment_id"],
                files=files, mlmodel=mlmodel, problem=problem)
