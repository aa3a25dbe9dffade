"""The UI's pages: experiments list, an experiment's runs, a run; and the stylesheet under /static/.

Each page has an operation id whose route-table entry makes the authorizer do what it does for the
matching API call: list pages are searches (the authorizer sets the visibility scope, and the queries
here apply it inside SQL); an experiment's or a run's page needs READ on it, so a hidden one answers
exactly like a missing one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.ui import account, admin, compare, logged_models, models, preview, workspaces
from gateway.ui.chart import metric_chart
from gateway.ui.preview import preview_kind
from gateway.ui.render import page
from tracking.api.artifacts import artifact_repository
from tracking.artifacts.paths import split_relative_path
from tracking.artifacts.run_locations import run_artifact_root
from tracking.db.tables import latest_metrics as latest_metrics_table
from tracking.db.tables import params as params_table
from tracking.db.tables import runs as runs_table
from tracking.errors import MlflowError
from tracking.scope import visibility_scope
from tracking.search.experiments_sql import build_experiment_search, experiment_ids_query
from tracking.search.page_token import decode_page_token, encode_page_token
from tracking.search.runs_sql import build_run_search, run_ids_page, run_ids_query
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json, parse_experiment_id
from tracking.store.metrics import get_metric_history
from tracking.store.runs import runs_to_json
from tracking.store.validation import validate_run_id

router = APIRouter(include_in_schema=False)
for _module in (compare, preview, logged_models, models, account, admin, workspaces):
    router.include_router(_module.router)

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8",
                "login.js": "text/javascript; charset=utf-8",
                "mlflow-bar.js": "text/javascript; charset=utf-8", "mlflow-bar.css": "text/css; charset=utf-8"}
PAGE_SIZE = 50
MAX_FILTER_CHARS = 4000
DEFAULT_COLUMNS = 8  # params (and metrics) shown when none are chosen: the experiment's first keys by name
MAX_COLUMNS = 30  # params (and metrics) that may be chosen as run-table columns
MAX_KEYS = 500  # param (and metric) keys of an experiment offered to choose from
MAX_KEY_CHARS = 250  # MLflow's limit on a param or metric key
MAX_KEY_RUNS = 10_000  # the keys offered are those of the experiment's newest runs, this many at most
KEY_CACHE_SECONDS = 30
KEY_CACHE_SIZE = 256
MAX_CHARTS = 24
MAX_HISTORY = 10_000  # points read per metric; the chart samples them down
MAX_CHILDREN = 100
RUN_ROWS = 100  # params, latest metrics or tags per page of the run page
ARTIFACT_ROWS = 200  # artifact folder entries per page
RUN_PAGE_KEYS = ("path", "params_page", "metrics_page", "tags_page", "files_page")  # the run page's own state
# The authorizer's answer for a resource the caller may not see; a missing one gets the same.
MISSING = "The requested resource does not exist."
EXPERIMENT_SORTS = [("name ASC", "Name A-Z"), ("name DESC", "Name Z-A"),
                    ("creation_time DESC", "Newest first"), ("creation_time ASC", "Oldest first"),
                    ("last_update_time DESC", "Recently updated")]
DEFAULT_RUN_ORDER = "attributes.start_time DESC"


def _missing() -> MlflowError:
    return MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")


def _query(request: Request, name: str, default: str = "") -> str:
    value = request.query_params.get(name, default)
    if len(value) > MAX_FILTER_CHARS:
        raise MlflowError(f"Parameter '{name}' is longer than {MAX_FILTER_CHARS} characters.")
    return value


def _url(base: str, /, _also: tuple[tuple[str, str], ...] = (), **params: str) -> str:
    """``base`` with the non-empty ``params``, then the (repeatable) pairs in ``_also``."""
    kept = [(k, v) for k, v in params.items() if v] + list(_also)
    return f"{base}?{urlencode(kept)}" if kept else base


def _page_of(ids_for, fp: str, token: str) -> tuple[list, str | None, bool]:
    """One page of ids, the next page's token, and whether this is not the first page."""
    offset = decode_page_token(token or None, fp)
    ids = ids_for(offset, PAGE_SIZE + 1)
    if len(ids) > PAGE_SIZE:
        return ids[:PAGE_SIZE], encode_page_token(offset + PAGE_SIZE, fp), offset > 0
    return ids, None, offset > 0


@router.get("/static/{name}", operation_id="ui.static")
def static_file(name: str) -> Response:
    """The UI's stylesheet and script (a fixed list of files: no path from the request reaches the file system)."""
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    return Response((STATIC / name).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/", operation_id="ui.experiments")
@router.get("/experiments", operation_id="ui.experiments_list")
def experiments_page(request: Request) -> Response:
    """The experiments the caller may see, filtered with MLflow's grammar, sorted and paged.

    At ``/experiments`` always; at ``/`` too unless MLflow's own UI answers there (gateway/ui/mlflow_ui.py).
    """
    base = request.url.path
    filter_text, token = _query(request, "filter"), _query(request, "page_token")
    order_by = _query(request, "order_by", "name ASC")
    experiments, next_token, later, error = [], None, False, None
    try:
        search = build_experiment_search(filter_text or None, [order_by] if order_by else [], "ACTIVE_ONLY")
        scope = visibility_scope(request).experiments
        with tracking_of(request).engine.begin() as conn:
            ids, next_token, later = _page_of(
                lambda offset, limit: list(conn.execute(experiment_ids_query(search, scope, offset, limit)).scalars()),
                search.fingerprint(scope), token)
            experiments = experiments_to_json(conn, ids) if ids else []
    except MlflowError as exc:
        error = exc.message
    return page(request, "experiments.html", title="Experiments", status=400 if error else 200,
                experiments=experiments, filter=filter_text, order_by=order_by, sorts=EXPERIMENT_SORTS,
                error=error, shown=len(experiments),
                first_url=_url(base, filter=filter_text, order_by=order_by) if later else None,
                next_url=_url(base, filter=filter_text, order_by=order_by, page_token=next_token)
                if next_token else None)


def _columns(base: str, filter_text: str, order_by: str, param_keys: list[str], metric_keys: list[str],
             chosen: tuple[tuple[str, str], ...]) -> list:
    """The run table's headers, each a link that sorts by it (again: the other direction), keeping the
    chosen columns."""
    specs = [("Name", "attributes.run_name"), ("Status", "attributes.status"),
             ("Started", "attributes.start_time"), ("Duration", None), ("User", "attributes.user_id")]
    specs += [(k, f"params.`{k}`") for k in param_keys] + [(k, f"metrics.`{k}`") for k in metric_keys]
    columns = []
    for label, key in specs:
        if key is None:
            columns.append({"label": label, "url": _url(base, chosen, filter=filter_text, order_by=order_by),
                            "arrow": ""})
            continue
        arrow, direction = "", "DESC"
        if order_by == f"{key} DESC":
            arrow, direction = " ↓", "ASC"
        elif order_by == f"{key} ASC":
            arrow = " ↑"
        columns.append({"label": label, "arrow": arrow,
                        "url": _url(base, chosen, filter=filter_text, order_by=f"{key} {direction}")})
    return columns


def _experiment_or_missing(conn, experiment_id: str) -> dict:
    found = experiments_to_json(conn, [parse_experiment_id(experiment_id)])
    if not found:
        raise _missing()
    return found[0]


class _KeyCache:
    """An experiment's param and metric keys per process for :data:`KEY_CACHE_SECONDS` (the newest
    :data:`KEY_CACHE_SIZE` experiments): reading them scans the params of up to :data:`MAX_KEY_RUNS` runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: OrderedDict[int, tuple[float, dict]] = OrderedDict()

    def get(self, experiment_id: int, load) -> dict:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(experiment_id)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            self._items[experiment_id] = (now + KEY_CACHE_SECONDS, value)
            self._items.move_to_end(experiment_id)
            while len(self._items) > KEY_CACHE_SIZE:
                self._items.popitem(last=False)
        return value


def _experiment_keys(request: Request, conn, experiment_id: int) -> dict:
    """The distinct param and latest-metric keys of the experiment's newest :data:`MAX_KEY_RUNS` active runs,
    by name (at most :data:`MAX_KEYS` each), whether either list was cut, and whether the experiment has more
    runs than were read. Cached briefly per process (a key logged just now may take that long to be offered)."""
    cache = getattr(request.app.state, "ui_key_cache", None)
    if cache is None:
        cache = _KeyCache()
        request.app.state.ui_key_cache = cache

    def load() -> dict:
        active = (runs_table.c.experiment_id == experiment_id, runs_table.c.lifecycle_stage == "active")
        counted = conn.execute(select(func.count()).select_from(
            select(runs_table.c.run_uuid).where(*active).limit(MAX_KEY_RUNS + 1).subquery())).scalar_one()
        read = (select(runs_table.c.run_uuid).where(*active).order_by(runs_table.c.start_time.desc())
                .limit(MAX_KEY_RUNS).scalar_subquery())
        found = {}
        for kind, table in (("params", params_table), ("metrics", latest_metrics_table)):
            keys = list(conn.execute(select(table.c.key).distinct().where(table.c.run_uuid.in_(read))
                                     .order_by(table.c.key).limit(MAX_KEYS + 1)).scalars())
            found[kind], found[f"{kind}_cut"] = keys[:MAX_KEYS], len(keys) > MAX_KEYS
        found["runs_cut"] = counted > MAX_KEY_RUNS
        return found

    return cache.get(experiment_id, load)


def _chosen_keys(request: Request, name: str) -> tuple[list[str], bool]:
    """The keys chosen in the repeated ``name`` query parameter (deduplicated, in order), at most
    :data:`MAX_COLUMNS`, and whether more were asked for."""
    keys = []
    for key in request.query_params.getlist(name):
        if len(key) > MAX_KEY_CHARS:
            raise MlflowError(f"A {name} key is longer than {MAX_KEY_CHARS} characters.")
        if key and key not in keys:
            keys.append(key)
    return keys[:MAX_COLUMNS], len(keys) > MAX_COLUMNS


@router.get("/experiments/{experiment_id}", operation_id="ui.experiment")
def experiment_page(request: Request, experiment_id: str) -> Response:
    """An experiment's runs as a table with chosen params and metrics, filtered, sorted and paged.

    The columns are chosen with a GET form (``cols=1`` and repeated ``param=`` / ``metric=``) over the
    keys of the whole experiment; without a choice, the first :data:`DEFAULT_COLUMNS` keys by name. The
    choice is carried through the sort, filter and pager links.
    """
    filter_text, token = _query(request, "filter"), _query(request, "page_token")
    order_by = _query(request, "order_by", DEFAULT_RUN_ORDER)
    explicit = request.query_params.get("cols") == "1"
    chosen_params, more_params = _chosen_keys(request, "param")
    chosen_metrics, more_metrics = _chosen_keys(request, "metric")
    engine = tracking_of(request).engine
    with engine.begin() as conn:
        experiment = _experiment_or_missing(conn, experiment_id)
        keys = _experiment_keys(request, conn, int(experiment["experiment_id"]))
    all_params, all_metrics = keys["params"], keys["metrics"]
    if explicit:
        param_keys, metric_keys = chosen_params, chosen_metrics
        chosen = (("cols", "1"), *(("param", k) for k in param_keys), *(("metric", k) for k in metric_keys))
    else:
        param_keys, metric_keys = all_params[:DEFAULT_COLUMNS], all_metrics[:DEFAULT_COLUMNS]
        chosen = ()
    runs, next_token, later, error = [], None, False, None
    try:
        search = build_run_search([int(experiment["experiment_id"])], filter_text or None,
                                  [order_by] if order_by else [], "ACTIVE_ONLY")
        scope = visibility_scope(request).experiments
        with engine.begin() as conn:
            ids, next_token, later = _page_of(
                lambda offset, limit: run_ids_page(conn, search, scope, offset, limit),
                search.fingerprint(scope), token)
            runs = runs_to_json(conn, ids) if ids else []
    except MlflowError as exc:
        error = exc.message
    rows = [{"info": r["info"], "params": {p["key"]: p["value"] for p in r["data"]["params"]},
             "metrics": {m["key"]: m["value"] for m in r["data"]["metrics"]}} for r in runs]
    base = f"/experiments/{experiment['experiment_id']}"
    # Keys offered in the chooser: the experiment's, and any chosen key past the offered ones.
    offered_params, offered_metrics = set(all_params), set(all_metrics)
    param_options = all_params + [k for k in param_keys if k not in offered_params]
    metric_options = all_metrics + [k for k in metric_keys if k not in offered_metrics]
    return page(request, "experiment.html", title=experiment["name"], status=400 if error else 200,
                experiment=experiment, runs=rows, filter=filter_text, order_by=order_by, error=error,
                param_keys=param_keys, metric_keys=metric_keys, shown=len(rows), chosen=chosen,
                param_options=param_options, metric_options=metric_options,
                keys_cut=keys["params_cut"] or keys["metrics_cut"],
                runs_cut=keys["runs_cut"], max_key_runs=MAX_KEY_RUNS,
                too_many_chosen=explicit and (more_params or more_metrics), max_columns=MAX_COLUMNS,
                default_columns=DEFAULT_COLUMNS, max_keys=MAX_KEYS, explicit=explicit,
                columns=_columns(base, filter_text, order_by, param_keys, metric_keys, chosen),
                first_url=_url(base, chosen, filter=filter_text, order_by=order_by) if later else None,
                next_url=_url(base, chosen, filter=filter_text, order_by=order_by, page_token=next_token)
                if next_token else None)


def _children_filter(run_id: str) -> str:
    # run_id passed validate_run_id (letters, digits, '_' and '-'), so it is safe inside the quotes.
    return f"tags.`mlflow.parentRunId` = '{run_id}'"


def _children(request: Request, conn, experiment_id: int, run_id: str) -> tuple[list[dict], bool]:
    """The first :data:`MAX_CHILDREN` child runs (newest first), and whether there are more."""
    search = build_run_search([experiment_id], _children_filter(run_id), [DEFAULT_RUN_ORDER], "ACTIVE_ONLY")
    ids = list(conn.execute(run_ids_query(search, visibility_scope(request).experiments, 0,
                                          MAX_CHILDREN + 1)).scalars())
    return (runs_to_json(conn, ids[:MAX_CHILDREN]) if ids else []), len(ids) > MAX_CHILDREN


def _section(request: Request, run_id: str, items: list, name: str, size: int, anchor: str) -> tuple[list, dict | None]:
    """One page of a run-page list (``<name>_page=N``, from 1) and its pager; None when one page holds all.

    The pager's links keep the run page's other state (artifact folder, the other lists' pages).
    """
    text = request.query_params.get(f"{name}_page", "1")
    number = int(text) if text.isascii() and text.isdigit() and len(text) < 7 and int(text) > 0 else 1
    if len(items) <= size:
        return items, None
    pages = -(-len(items) // size)
    number = min(number, pages)
    shown = items[(number - 1) * size:number * size]

    def link(n: int) -> str:
        pairs = [(k, v) for k, v in request.query_params.multi_items()
                 if k in RUN_PAGE_KEYS and k != f"{name}_page"]
        if n > 1:
            pairs.append((f"{name}_page", str(n)))
        return _url(f"/runs/{run_id}", tuple(pairs)) + f"#{anchor}"

    return shown, {"first": (number - 1) * size + 1, "last": (number - 1) * size + len(shown), "total": len(items),
                   "prev_url": link(number - 1) if number > 1 else None,
                   "next_url": link(number + 1) if number < pages else None}


def _artifacts(request: Request, run_id: str, raw_path: str) -> tuple[list[dict], str | None, str | None]:
    """The listing under ``raw_path``, the link to its parent folder, and a problem to show instead."""
    try:
        relative = split_relative_path(raw_path, allow_trailing_slash=True)
        root, _ = run_artifact_root(tracking_of(request).engine, run_id)
        entries = artifact_repository(request).list_dir(root.child(relative))
    except MlflowError as exc:
        return [], None, exc.message
    prefix = "/".join(relative)
    listing = []
    for entry in sorted(entries, key=lambda e: (not e.is_dir, e.name)):
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        url = (_url(f"/runs/{run_id}", path=path) + "#artifacts" if entry.is_dir
               else _url("/download-artifact", run_id=run_id, path=path))
        preview = None if entry.is_dir or preview_kind(entry.name) is None \
            else _url(f"/runs/{run_id}/preview", path=path)
        listing.append({"name": entry.name, "is_dir": entry.is_dir, "size": entry.file_size, "url": url,
                        "preview": preview})
    parent = None
    if relative:
        parent = _url(f"/runs/{run_id}", path="/".join(relative[:-1])) + "#artifacts"
    return listing, parent, None


@router.get("/runs/{run_id}", operation_id="ui.run")
def run_page(request: Request, run_id: str) -> Response:
    """A run: overview, params, latest metrics, tags, parent and children, metric charts, artifacts."""
    try:
        validate_run_id(run_id)
    except MlflowError:
        raise _missing() from None
    raw_path = _query(request, "path")
    with tracking_of(request).engine.begin() as conn:
        found = runs_to_json(conn, [run_id])
        if not found:
            raise _missing()
        run = found[0]
        info, data = run["info"], run["data"]
        experiment_id = int(info["experiment_id"])
        experiment = experiments_to_json(conn, [experiment_id])
        children, more_children = _children(request, conn, experiment_id, run_id)
        charts = []
        for metric in data["metrics"][:MAX_CHARTS]:
            history, _ = get_metric_history(conn, run_id, metric["key"], MAX_HISTORY, None)
            chart = metric_chart(metric["key"], history)
            if chart is not None:
                charts.append(chart)
        run_models = logged_models.run_logged_models(conn, run_id, experiment_id)
    tags = data["tags"]
    parent_id = next((t["value"] for t in tags if t["key"] == "mlflow.parentRunId"), None)
    artifacts, artifact_parent, artifact_error = _artifacts(request, run_id, raw_path)
    artifacts, files_pager = _section(request, run_id, artifacts, "files", ARTIFACT_ROWS, "artifacts")
    params, params_pager = _section(request, run_id, data["params"], "params", RUN_ROWS, "params")
    metrics, metrics_pager = _section(request, run_id, data["metrics"], "metrics", RUN_ROWS, "metrics")
    shown_tags, tags_pager = _section(request, run_id, tags, "tags", RUN_ROWS, "tags")
    datasets = [{"dataset": d["dataset"], "context": next((t["value"] for t in d.get("tags", [])
                                                           if t["key"] == "mlflow.data.context"), "")}
                for d in run.get("inputs", {}).get("dataset_inputs", [])]
    children_url = _url(f"/experiments/{experiment_id}", filter=_children_filter(run_id)) if more_children else None
    return page(request, "run.html", title=info.get("run_name") or run_id, info=info, datasets=datasets,
                experiment_name=experiment[0]["name"] if experiment else info["experiment_id"],
                params=params, metrics=metrics, tags=shown_tags, parent_id=parent_id,
                params_pager=params_pager, metrics_pager=metrics_pager, tags_pager=tags_pager,
                files_pager=files_pager, children=children, children_url=children_url, max_children=MAX_CHILDREN,
                charts=charts, metric_count=len(data["metrics"]), max_charts=MAX_CHARTS,
                artifacts=artifacts, artifact_parent=artifact_parent, run_models=run_models,
                artifact_error=artifact_error, artifact_path=raw_path)


def _ui_operation(request: Request) -> bool:
    operation_id = getattr(request.scope.get("route"), "operation_id", None) or ""
    return operation_id.startswith("ui.")


# The answer to an unexpected error on a UI page bypasses the middleware that adds the security headers
# (Starlette answers it outermost), so it carries its own: the layout's stylesheet and script, nothing else.
ERROR_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
}
UNEXPECTED = "The page could not be shown because of an unexpected error on the server. " \
             "It has been logged; try again later or tell an administrator."


def install_error_pages(app: FastAPI) -> None:
    """Answer errors on UI pages with an HTML page; every other route keeps its JSON error body.

    Expected errors (:class:`MlflowError`) show their message; any other exception shows a fixed one
    (the detail goes to the server log only, through the generic handler). Called once while the app is
    built, right after the policy file was loaded: it also keeps that file's bytes for the policy page.
    """
    admin.remember_policy_file(app)
    api_handler = app.exception_handlers[MlflowError]
    unexpected_handler = app.exception_handlers[Exception]

    async def handler(request: Request, exc: MlflowError) -> Response:
        if not _ui_operation(request):
            return await api_handler(request, exc)
        title = "Not found" if exc.status == 404 else "Something went wrong"
        return await run_in_threadpool(page, request, "error.html", title=title, message=exc.message,
                                       status=exc.status)

    async def unexpected(request: Request, exc: Exception) -> Response:
        answer = await unexpected_handler(request, exc)  # logs the detail for operators
        if not _ui_operation(request):
            return answer
        try:
            return await run_in_threadpool(page, request, "error.html", title="Something went wrong",
                                           message=UNEXPECTED, status=500, headers=ERROR_PAGE_HEADERS)
        except Exception:  # the layout itself failed: keep the generic answer
            return answer

    app.add_exception_handler(MlflowError, handler)
    app.add_exception_handler(Exception, unexpected)
