"""REST endpoints: experiments/search and runs/search (POST with a JSON body, GET with a query string).

Both apply the caller's visibility scope inside the SQL query, so a page holds ``max_results`` visible
rows whenever that many exist, and the next page starts where the last one ended.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from tracking.api.body import Args, request_args
from tracking.api.dispatch import search_handler
from tracking.api.responses import ok
from tracking.errors import invalid_parameter
from tracking.scope import visibility_scope
from tracking.search.experiments_sql import build_experiment_search, experiment_ids_query
from tracking.search.page_token import decode_page_token, encode_page_token
from tracking.search.runs_sql import build_run_search, run_ids_page
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json, parse_experiment_id
from tracking.store.runs import runs_to_json

router = APIRouter()

# MLflow's limits (mlflow.store.tracking SEARCH_MAX_RESULTS_DEFAULT / _THRESHOLD).
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS_LIMIT = 50_000
MAX_FILTER_CHARS = 50_000
# Generous: MLflow's client lists every experiment for search_all_experiments; bounded so one request
# cannot build an unbounded statement.
MAX_EXPERIMENT_IDS = 100_000
# protobuf ViewType: names in JSON, numbers also accepted as protobuf JSON allows.
VIEW_TYPES = {"ACTIVE_ONLY": "ACTIVE_ONLY", "DELETED_ONLY": "DELETED_ONLY", "ALL": "ALL",
              "1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}


def _view_type(args: Args, name: str) -> str:
    value = args.raw(name)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return "ACTIVE_ONLY"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid_parameter(f"Invalid value {value!r:.100} for parameter '{name}' supplied.")
    view = VIEW_TYPES.get(str(value).upper())
    if view is None:
        raise invalid_parameter(
            f"Invalid value {value!r:.100} for parameter '{name}': use ACTIVE_ONLY, DELETED_ONLY or ALL."
        )
    return view


def _common(args: Args) -> tuple[str | None, list[str], int, str | None]:
    filter_text = args.str("filter", max_length=MAX_FILTER_CHARS)
    order_by = args.str_list("order_by")
    max_results = args.int("max_results", default=DEFAULT_MAX_RESULTS, minimum=1, maximum=MAX_RESULTS_LIMIT)
    page_token = args.str("page_token", max_length=4096)
    return filter_text, order_by, max_results, page_token


def _page(ids_for, fp: str, page_token: str | None, max_results: int) -> tuple[list[Any], str | None]:
    offset = decode_page_token(page_token, fp)
    ids = ids_for(offset, max_results + 1)
    if len(ids) > max_results:
        return ids[:max_results], encode_page_token(offset + max_results, fp)
    return ids, None


@router.post("/runs/search", operation_id="runs.search")
@router.get("/runs/search", operation_id="runs.search_via_get")
@search_handler
def search_runs(request: Request, args: Args = Depends(request_args)):
    """Runs of the given experiments matching the filter, in order, one page at a time."""
    filter_text, order_by, max_results, page_token = _common(args)
    raw_ids = args.str_list("experiment_ids")
    if len(raw_ids) > MAX_EXPERIMENT_IDS:
        raise invalid_parameter(f"Parameter 'experiment_ids' may list at most {MAX_EXPERIMENT_IDS} experiments.")
    experiment_ids = [parse_experiment_id(v, "experiment_ids") for v in raw_ids]
    search = build_run_search(experiment_ids, filter_text, order_by, _view_type(args, "run_view_type"))
    scope = visibility_scope(request).experiments
    with tracking_of(request).engine.begin() as conn:
        run_ids, next_token = _page(
            lambda offset, limit: run_ids_page(conn, search, scope, offset, limit),
            search.fingerprint(scope), page_token, max_results,
        )
        payload: dict[str, Any] = {}
        if run_ids:
            payload["runs"] = runs_to_json(conn, run_ids)
    if next_token:
        payload["next_page_token"] = next_token
    return ok(payload)


@router.post("/experiments/search", operation_id="experiments.search")
@router.get("/experiments/search", operation_id="experiments.search_via_get")
@search_handler
def search_experiments(request: Request, args: Args = Depends(request_args)):
    """Experiments matching the filter, in order, one page at a time."""
    filter_text, order_by, max_results, page_token = _common(args)
    search = build_experiment_search(filter_text, order_by, _view_type(args, "view_type"))
    scope = visibility_scope(request).experiments
    with tracking_of(request).engine.begin() as conn:
        experiment_ids, next_token = _page(
            lambda offset, limit: list(conn.execute(experiment_ids_query(search, scope, offset, limit)).scalars()),
            search.fingerprint(scope), page_token, max_results,
        )
        payload: dict[str, Any] = {}
        if experiment_ids:
            payload["experiments"] = experiments_to_json(conn, experiment_ids)
    if next_token:
        payload["next_page_token"] = next_token
    return ok(payload)
