"""Registered models, prompts and traces: lists, a model's page, an experiment's traces and one trace.

Lists are searches under the caller's visibility scope (set by the authorizer, applied inside SQL);
a model page needs READ on the model, a trace list READ on the experiment, a trace page READ on the
trace's experiment: a hidden one answers like a missing one.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from gateway.ui.render import page
from tracking.db.mlflow3_tables import spans
from tracking.db.registry_tables import model_versions, registered_models
from tracking.errors import MlflowError
from tracking.scope import request_workspace, visibility_scope
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json, parse_experiment_id
from tracking.store.registry_json import registered_models_json, versions_json
from tracking.store.registry_search import search_registered_models
from tracking.store.registry_validation import STAGE_DELETED
from tracking.store.trace_search import search_traces
from tracking.store.traces import load_trace_infos, validate_trace_id

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
MAX_VERSIONS = 200
MAX_SPANS = 2000
MAX_FILTER_CHARS = 4000
PROMPT_FILTER = "tags.`mlflow.prompt.is_prompt` = 'true'"
MISSING = "The requested resource does not exist."
MODEL_MISSING = "The requested registered model does not exist."


def _arg(request: Request, name: str, default: str = "") -> str:
    value = request.query_params.get(name, default)
    if len(value) > MAX_FILTER_CHARS:
        raise MlflowError(f"Parameter '{name}' is longer than {MAX_FILTER_CHARS} characters.")
    return value


def _tag(item: dict, key: str) -> str | None:
    return next((t.get("value") for t in item.get("tags", []) if t["key"] == key), None)


def _model_list(request: Request, *, prompts: bool) -> Response:
    search_text, token = _arg(request, "q"), _arg(request, "page_token")
    filters = [PROMPT_FILTER] if prompts else []
    if search_text:
        filters.append("name ILIKE '%" + search_text.replace("'", "''") + "%'")
    items, next_token, error = [], None, None
    try:
        with tracking_of(request).engine.connect() as conn:
            found = search_registered_models(
                conn, filter_string=" AND ".join(filters) or None, max_results=PAGE_SIZE,
                order_by=["name ASC"], page_token=token or None, scope=visibility_scope(request).registered_models)
        items, next_token = found.items, found.next_page_token
    except MlflowError as exc:
        error = exc.message
    base = "/prompts" if prompts else "/models"
    return page(request, "models.html", title="Prompts" if prompts else "Registered models",
                section="prompts" if prompts else "models", status=400 if error else 200, models=items,
                prompts=prompts, q=search_text, error=error, base=base, shown=len(items),
                first_url=_url(base, q=search_text) if token else None,
                next_url=_url(base, q=search_text, page_token=next_token) if next_token else None)


def _url(base: str, /, **params: str | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{base}?{urlencode(kept)}" if kept else base


@router.get("/models", operation_id="ui.models")
def models_page(request: Request) -> Response:
    """The registered models the caller may see (prompts are listed on their own page, as in MLflow)."""
    return _model_list(request, prompts=False)


@router.get("/prompts", operation_id="ui.prompts")
def prompts_page(request: Request) -> Response:
    """The prompts the caller may see."""
    return _model_list(request, prompts=True)


@router.get("/model", operation_id="ui.model")
def model_page(request: Request) -> Response:
    """One registered model or prompt: tags, aliases, and its versions with stage and source run."""
    name, workspace = _arg(request, "name"), request_workspace(request)
    with tracking_of(request).engine.connect() as conn:
        row = conn.execute(select(registered_models).where(registered_models.c.workspace == workspace,
                                                           registered_models.c.name == name)).first()
        if row is None:
            raise MlflowError(MODEL_MISSING, "RESOURCE_DOES_NOT_EXIST")
        model = registered_models_json(conn, [row])[0]
        rows = conn.execute(select(model_versions)
                            .where(model_versions.c.workspace == workspace, model_versions.c.name == name,
                                   model_versions.c.current_stage != STAGE_DELETED)
                            .order_by(model_versions.c.version.desc()).limit(MAX_VERSIONS)).all()
        versions = versions_json(conn, rows)
    is_prompt = (_tag(model, "mlflow.prompt.is_prompt") or "").lower() == "true"
    for v in versions:
        v["prompt_text"] = _tag(v, "mlflow.prompt.text") if is_prompt else None
    return page(request, "model.html", title=name, section="prompts" if is_prompt else "models", model=model,
                versions=versions, is_prompt=is_prompt, more=len(rows) == MAX_VERSIONS)


@router.get("/experiments/{experiment_id}/traces", operation_id="ui.traces")
def traces_page(request: Request, experiment_id: str) -> Response:
    """An experiment's traces, newest first, paged, filtered with MLflow's trace search grammar."""
    filter_text, token = _arg(request, "filter"), _arg(request, "page_token")
    with tracking_of(request).engine.connect() as conn:
        found = experiments_to_json(conn, [parse_experiment_id(experiment_id)])
        if not found:
            raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")
        experiment = found[0]
        traces, next_token, error = [], None, None
        try:
            traces, next_token = search_traces(
                conn, experiment_ids=[experiment["experiment_id"]], filter_string=filter_text or None,
                max_results=PAGE_SIZE, order_by=["timestamp_ms DESC"], page_token=token or None,
                scope=visibility_scope(request).experiments)
        except MlflowError as exc:
            error = exc.message
    base = f"/experiments/{experiment['experiment_id']}/traces"
    return page(request, "traces.html", title=f"Traces of {experiment['name']}", experiment=experiment,
                traces=traces, filter=filter_text, error=error, status=400 if error else 200, shown=len(traces),
                first_url=_url(base, filter=filter_text) if token else None,
                next_url=_url(base, filter=filter_text, page_token=next_token) if next_token else None)


def span_tree(rows: list) -> list[dict]:
    """Spans in depth-first order with their depth; orphans (parent not logged) start their own tree."""
    by_id = {r.span_id: r for r in rows}
    children: dict[str | None, list] = {}
    for r in rows:
        parent = r.parent_span_id if r.parent_span_id in by_id else None
        children.setdefault(parent, []).append(r)
    ordered: list[dict] = []
    starts = [r.start_time_unix_nano for r in rows if r.start_time_unix_nano is not None]
    ends = [r.end_time_unix_nano for r in rows if r.end_time_unix_nano is not None]
    t0 = min(starts) if starts else 0
    total = max((max(ends) if ends else t0) - t0, 1)
    stack = [(r, 0) for r in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        r, depth = stack.pop()
        if r.span_id in seen:
            continue  # a cycle in hostile data must not loop forever
        seen.add(r.span_id)
        duration = (r.end_time_unix_nano - r.start_time_unix_nano
                    if r.end_time_unix_nano is not None and r.start_time_unix_nano is not None else None)
        ordered.append({
            "span_id": r.span_id, "name": r.name, "type": r.type, "status": r.status, "depth": min(depth, 12),
            "duration_ms": None if duration is None else duration / 1e6,
            "offset_pct": round(100 * ((r.start_time_unix_nano or t0) - t0) / total, 1),
            "width_pct": max(round(100 * (duration or 0) / total, 1), 0.5),
        })
        stack.extend((c, depth + 1) for c in reversed(children.get(r.span_id, [])))
    return ordered


@router.get("/traces/{trace_id}", operation_id="ui.trace")
def trace_page(request: Request, trace_id: str) -> Response:
    """One trace: its info, tags, and spans as an indented tree with durations and status."""
    try:
        validate_trace_id(trace_id)
    except MlflowError:
        raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST") from None
    with tracking_of(request).engine.connect() as conn:
        infos = load_trace_infos(conn, [trace_id])
        if not infos:
            raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")
        rows = conn.execute(
            select(spans.c.span_id, spans.c.parent_span_id, spans.c.name, spans.c.type, spans.c.status,
                   spans.c.start_time_unix_nano, spans.c.end_time_unix_nano)
            .where(spans.c.trace_id == trace_id).order_by(spans.c.start_time_unix_nano, spans.c.span_id)
            .limit(MAX_SPANS)).all()
        info = infos[0]
        experiment_id = info["trace_location"]["mlflow_experiment"]["experiment_id"]
        experiment = experiments_to_json(conn, [int(experiment_id)])
    return page(request, "trace.html", title=f"Trace {trace_id}", info=info, spans=span_tree(rows),
                experiment_id=experiment_id, experiment_name=experiment[0]["name"] if experiment else experiment_id,
                more=len(rows) == MAX_SPANS)
