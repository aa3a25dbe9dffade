"""The one edge where domain errors become HTTP responses in MLflow's ``{"error_code","message"}`` shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from auth.errors import AuthError, LockedOut, Unauthenticated
from tracking.api.responses import error_response
from tracking.errors import MlflowError

log = logging.getLogger("mlgate.errors")


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so that no error reaches a client as HTML or a stack trace."""

    @app.exception_handler(MlflowError)
    async def _mlflow_error(request: Request, exc: MlflowError):
        return error_response(exc)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError):
        response = error_response(MlflowError(exc.message, exc.code))
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Basic realm="mlgate", charset="UTF-8"'
        if isinstance(exc, LockedOut):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]
        )
        return error_response(MlflowError(f"Invalid request: {details}", "INVALID_PARAMETER_VALUE"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            err = MlflowError(f"No endpoint {request.method} {request.url.path}", "ENDPOINT_NOT_FOUND")
        elif exc.status_code == 405:
            err = MlflowError(f"Method {request.method} is not allowed here", "BAD_REQUEST", status=405)
        else:
            err = MlflowError(str(exc.detail), "BAD_REQUEST", status=exc.status_code)
        response = error_response(err)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Log the detail for operators; tell the client nothing about internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(MlflowError("Internal server error.", "INTERNAL_ERROR"))
