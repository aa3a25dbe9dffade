"""``GET /ready`` (anonymous readiness probe) and ``GET /metrics`` (administrators; see also the scrape token)."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from gateway.context import AppServices
from gateway.ops.readiness import CHECK_TIMEOUT_SECONDS, DOWN, Report

router = APIRouter()


@router.get("/ready", operation_id="ops.ready")
async def ready(services: AppServices) -> JSONResponse:
    """200 when the database and Redis answer; 503 naming what is down (no hosts, URLs or error text)."""
    readiness = services.readiness
    report: Report | None = None
    # Two checks at most, each bounded by its own timeouts; this bound also covers a pool that is exhausted.
    with anyio.move_on_after(CHECK_TIMEOUT_SECONDS * 3):
        report = await anyio.to_thread.run_sync(readiness.report, abandon_on_cancel=True)
    if report is None:
        report = Report({"database": DOWN})
    if report.ready:
        return JSONResponse({"status": "ready", "checks": report.checks})
    return JSONResponse({"status": "unavailable", "checks": report.checks,
                         "error_code": "TEMPORARILY_UNAVAILABLE",
                         "message": f"Not ready: {', '.join(report.down)} unavailable."},
                        status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", operation_id="ops.metrics")
def metrics(services: AppServices) -> Response:
    """The Prometheus text exposition (every worker's samples with ``--workers N``)."""
    body, content_type = services.metrics.exposition()
    return Response(body, media_type=content_type)
