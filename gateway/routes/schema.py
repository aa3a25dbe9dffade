"""The OpenAPI document, served as an ordinary classified route.

FastAPI would serve it from a bare Starlette route, outside the app-wide authorizer dependency; this
route goes through the authorizer like every other, so the route table decides who may read it.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

OPENAPI_PATH = "/api/openapi.json"

router = APIRouter()


@router.get(OPENAPI_PATH, operation_id="server.openapi", include_in_schema=False)
def openapi_document(request: Request) -> JSONResponse:
    """The API description of this server (built once per process by FastAPI and cached)."""
    return JSONResponse(request.app.openapi())
