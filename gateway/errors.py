"""The one edge where domain errors become HTTP responses in MLflow's ``{"error_code","message"}`` shape."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse

from auth.errors import AuthError, LockedOut, Unauthenticated, Unavailable
from auth.scim.protocol import ScimError
from auth.scim.token import is_scim_path
from gateway.authn import AUTHENTICATION_ERROR, NOT_AUTHENTICATED, wants_html
from tracking.api.responses import error_response
from tracking.errors import MlflowError

log = logging.getLogger("mlgate.errors")


def scim_error_response(exc: ScimError) -> JSONResponse:
    """A SCIM error body (RFC 7644 section 3.12) as application/scim+json."""
    return JSONResponse(exc.body(), status_code=exc.status, media_type="application/scim+json",
                        headers={"Cache-Control": "no-store", **exc.headers})


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so that no error reaches a client as HTML or a stack trace."""

    @app.exception_handler(MlflowError)
    async def _mlflow_error(request: Request, exc: MlflowError):
        return error_response(exc)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError):
        return _auth_error_response(request, exc)

    @app.exception_handler(ScimError)
    async def _scim_error(request: Request, exc: ScimError):
        return scim_error_response(exc)

    def _auth_error_response(request: Request, exc: AuthError):
        if isinstance(exc, Unauthenticated) and wants_html(request.scope):
            # A person opening a page: the sign-in page, then back here (a path on this server only).
            # The query string too (a filtered list, a page number), encoded as one value of next.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?next=" + quote(target, safe="/"), status_code=303,
                                    headers={"Cache-Control": "no-store"})
        response = error_response(MlflowError(exc.message, exc.code))
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Basic realm="mlgate", charset="UTF-8"'
        if isinstance(exc, LockedOut):
            response.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = "5"  # the lockout store or the directory: worth a retry soon
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        if is_scim_path(request.url.path):
            return scim_error_response(ScimError(400, "The request is not valid.", "invalidSyntax"))
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]
        )
        return error_response(MlflowError(f"Invalid request: {details}", "INVALID_PARAMETER_VALUE"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if is_scim_path(request.url.path):
            # SCIM clients read SCIM error bodies; the endpoint list is public (ServiceProviderConfig, RFC).
            return scim_error_response(ScimError(exc.status_code, f"No endpoint {request.method} {request.url.path}"
                                                 if exc.status_code in (404, 405) else str(exc.detail)))
        state = request.scope.get("state") or {}
        if exc.status_code in (404, 405) and "principal" in state and state["principal"] is None:
            # Authentication found no one and no route answered, so no authorizer ran: an anonymous caller
            # learns nothing about which paths exist, and gets the same refusal (or sign-in page) as elsewhere.
            failure = getattr(request.state, AUTHENTICATION_ERROR, None)
            return _auth_error_response(request, failure or Unauthenticated(NOT_AUTHENTICATED))
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

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect):
        # The client hung up while sending its body: nothing was committed and nobody reads this answer.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return error_response(MlflowError("The client disconnected before the request body was complete.",
                                          "BAD_REQUEST"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Log the detail for operators; tell the client nothing about internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(MlflowError("Internal server error.", "INTERNAL_ERROR"))
