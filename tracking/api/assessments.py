"""REST endpoints: assessments on traces (``/api/3.0/mlflow/traces/{trace_id}/assessments``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request

from tracking.api.body import request_args
from tracking.api.in_transaction import in_transaction
from tracking.api.responses import ok
from tracking.errors import invalid_parameter
from tracking.store import assessments as store

router = APIRouter()  # included into the traces v3 router


def _same(args, name: str, value: str, nested: dict | None = None) -> None:
    # The client repeats ids in the body; a different one would make the request ambiguous.
    given = (nested or {}).get(name) if nested is not None else args.str(name)
    if given and given != value:
        raise invalid_parameter(f"The {name} in the body ({str(given)[:100]!r}) differs from the one in the path.")


@router.post("/traces/{trace_id}/assessments", operation_id="assessments.create")
async def create_assessment(request: Request, trace_id: str):
    """CreateAssessment: feedback or an expectation on a trace."""
    args = await request_args(request)
    body = args.obj("assessment", required=True)
    _same(args, "trace_id", trace_id, body)
    created = await in_transaction(request, lambda conn: store.create_assessment(conn, trace_id, body))
    return ok({"assessment": created})


@router.get("/traces/{trace_id}/assessments/{assessment_id}", operation_id="assessments.get")
async def get_assessment(request: Request, trace_id: str, assessment_id: str):
    """GetAssessmentRequest."""
    await request_args(request)
    found = await in_transaction(request, lambda conn: store.get_assessment(conn, trace_id, assessment_id))
    return ok({"assessment": found})


@router.patch("/traces/{trace_id}/assessments/{assessment_id}", operation_id="assessments.update")
async def update_assessment(request: Request, trace_id: str, assessment_id: str):
    """UpdateAssessment: the fields named by ``update_mask``."""
    args = await request_args(request)
    body = args.obj("assessment", required=True)
    _same(args, "trace_id", trace_id, body)
    _same(args, "assessment_id", assessment_id, body)
    mask = args.raw("update_mask")
    updated = await in_transaction(
        request, lambda conn: store.update_assessment(conn, trace_id, assessment_id, body, mask))
    return ok({"assessment": updated})


@router.delete("/traces/{trace_id}/assessments/{assessment_id}", operation_id="assessments.delete")
async def delete_assessment(request: Request, trace_id: str, assessment_id: str):
    """DeleteAssessment (idempotent)."""
    args = await request_args(request)
    _same(args, "trace_id", trace_id)
    _same(args, "assessment_id", assessment_id)
    await in_transaction(request, lambda conn: store.delete_assessment(conn, trace_id, assessment_id))
    return ok()
