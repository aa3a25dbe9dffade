"""Compare 2 to 10 runs: params and latest metrics side by side, each metric's curves overlaid.

The route table checks READ on every run named (a repeated ``runs`` query parameter, like the GET
form on the experiment page sends it), so a hidden run answers exactly like a missing one.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from gateway.ui.chart import overlay_chart
from gateway.ui.render import number, page
from tracking.errors import MlflowError, invalid_parameter
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json
from tracking.store.metrics import get_metric_history
from tracking.store.runs import runs_to_json
from tracking.store.validation import validate_run_id

router = APIRouter(include_in_schema=False)
MIN_RUNS, MAX_RUNS = 2, 10
MAX_CHARTS = 24
MAX_HISTORY = 10_000
MISSING = "The requested resource does not exist."


def _rows(runs: list[dict], section: str, shown) -> list[dict]:
    """One row per key across the runs: each run's value (or None), and whether the values differ."""
    keys = sorted({item["key"] for run in runs for item in run["data"][section]})
    by_run = [{item["key"]: item["value"] for item in run["data"][section]} for run in runs]
    rows = []
    for key in keys:
        values = [values.get(key) for values in by_run]
        rows.append({"key": key, "values": [shown(v) for v in values],
                     "differs": len({shown(v) for v in values}) > 1})
    return rows


def _text(value) -> str:
    return "" if value is None else str(value)


@router.get("/compare", operation_id="ui.compare")
def compare_page(request: Request) -> Response:
    """Params and latest metrics of the chosen runs side by side, differences marked; overlaid curves."""
    run_ids = list(dict.fromkeys(request.query_params.getlist("runs")))
    if not MIN_RUNS <= len(run_ids) <= MAX_RUNS:
        raise invalid_parameter(f"Choose between {MIN_RUNS} and {MAX_RUNS} runs to compare "
                                f"({len(run_ids)} chosen).")
    for run_id in run_ids:
        try:
            validate_run_id(run_id)
        except MlflowError:
            raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST") from None
    with tracking_of(request).engine.begin() as conn:
        runs = runs_to_json(conn, run_ids)
        if len(runs) != len(run_ids):
            raise MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")
        experiments = {e["experiment_id"]: e["name"] for e in experiments_to_json(
            conn, sorted({int(r["info"]["experiment_id"]) for r in runs}))}
        labels = [r["info"].get("run_name") or r["info"]["run_id"] for r in runs]
        all_keys = sorted({m["key"] for r in runs for m in r["data"]["metrics"]})
        charts = []
        for key in all_keys[:MAX_CHARTS]:
            histories = []
            for label, run in zip(labels, runs, strict=True):
                history, _ = get_metric_history(conn, run["info"]["run_id"], key, MAX_HISTORY, None)
                histories.append((label, history))
            chart = overlay_chart(key, histories)
            if chart is not None:
                charts.append(chart)
    columns = [{"run_id": r["info"]["run_id"], "label": label, "status": r["info"]["status"],
                "experiment_id": r["info"]["experiment_id"],
                "experiment": experiments.get(r["info"]["experiment_id"], r["info"]["experiment_id"]),
                "series": i % 10}
               for i, (label, r) in enumerate(zip(labels, runs, strict=True))]
    return page(request, "compare.html", title=f"Compare {len(runs)} runs", columns=columns,
                params=_rows(runs, "params", _text), metrics=_rows(runs, "metrics", number), charts=charts,
                metric_count=len(all_keys), max_charts=MAX_CHARTS)
