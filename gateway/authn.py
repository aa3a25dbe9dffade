"""Authentication middleware: authenticate once, put the Principal in ``scope["state"]["principal"]``.

Bad credentials get 401 with ``WWW-Authenticate: Basic realm="mlgate"`` and MLflow's UNAUTHENTICATED
body; a locked-out client gets 429 with ``Retry-After``. A request without credentials continues with no
principal only where :func:`anonymous_allowed` says so.

SEAM for the authorization layer: today this middleware itself refuses anonymous requests outside the
public paths (so the server is never open) and refuses writes by read-only tokens. When the authorization
dependency decides per operation, build the middleware with ``anonymous_allowed=lambda scope: True`` and
``enforce_read_only=False``; nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

import anyio.to_thread
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.backends import Authenticator
from auth.errors import AuthError, LockedOut, Unauthenticated
from auth.sessions import COOKIE_NAME, CSRF_HEADER, SessionManager
from auth.tokens import query_carries_token
from gateway.middleware.ratelimit import limit_principal

PUBLIC_PATHS = frozenset({"/health", "/version", "/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info",
                          "/login", "/logout", "/favicon.ico"})
# /sso/ pages run before anyone is signed in; the logout handler checks its session and CSRF field itself.
PUBLIC_PREFIXES = ("/static/", "/static-files/", "/assets/", "/sso/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms on these paths carry their own CSRF field, checked by their handlers (the SSO sign-out form
# posts the session's token in a csrf_token field, gateway/routes/sso.py).
FORM_PATHS = frozenset({"/login", "/logout", "/sso/logout"})
# The web UI's forms (gateway/ui/forms.py checks their csrf_token field against the session's token).
UI_FORM_PREFIXES = ("/account/", "/admin/")
CHALLENGE = 'Basic realm="mlgate", charset="UTF-8"'
NOT_AUTHENTICATED = ("You are not authenticated. Send a username and password (MLFLOW_TRACKING_USERNAME / "
                     "MLFLOW_TRACKING_PASSWORD) or a token (MLFLOW_TRACKING_TOKEN).")


def is_public(path: str) -> bool:
    """Paths anyone may reach without logging in: probes, the login pages and static assets."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def anonymous_allowed(scope: Scope) -> bool:
    """Interim rule until the authorization dependency exists: anonymous only on public paths."""
    return is_public(scope["path"])


def read_only_allows(method: str, path: str) -> bool:
    """What a read-only token may do: reads, and MLflow's POST searches (which change nothing)."""
    return method in SAFE_METHODS or (method == "POST" and path.rstrip("/").endswith("/search"))


async def _send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = json.dumps({"error_code": code, "message": message}, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"cache-control", b"no-store")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


def _wants_html(scope: Scope) -> bool:
    if scope["method"] != "GET" or scope["path"].startswith(("/api/", "/ajax-api/")):
        return False
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/html" in value
    return False


def _has_credentials(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization" or (name == b"cookie" and COOKIE_NAME.encode() in value):
            return True
        # Custom backends (e.g. a trusted proxy header) may need any header: let them look.
    return False


class AuthenticationMiddleware:
    """Plain-ASGI authentication: one backend chain, one Principal, one place for 401/429."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, sessions: SessionManager, *,
                 anonymous_allowed: Callable[[Scope], bool] = anonymous_allowed, enforce_read_only: bool = True,
                 always_consult_backends: bool = False):
        self.app = app
        self.authenticator = authenticator
        self.sessions = sessions
        self.anonymous_allowed = anonymous_allowed
        self.enforce_read_only = enforce_read_only
        # Header-based custom backends must be consulted even without Authorization or a cookie.
        self.always_consult_backends = always_consult_backends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not is_public(scope["path"]):
            # No websocket endpoint takes anonymous or credentialed use yet: refuse (RFC 6455 code 1008).
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = None
        path = scope["path"]
        if is_public(path):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if query and query_carries_token(parse_qsl(query.decode("latin-1"), keep_blank_values=True)):
            # RFC 6750 section 5.3: tokens in URLs leak through logs, histories and Referer headers.
            await _send_error(send, 400, "INVALID_PARAMETER_VALUE",
                              "Credentials are not accepted in the query string; use the Authorization header.")
            return
        principal = None
        if self.always_consult_backends or _has_credentials(scope):
            try:
                principal = await anyio.to_thread.run_sync(self.authenticator.authenticate, HTTPConnection(scope))
            except LockedOut as exc:
                await _send_error(send, 429, exc.code, exc.message, {"Retry-After": str(exc.retry_after)})
                return
            except Unauthenticated as exc:
                if _wants_html(scope):
                    await _redirect(send, "/login?next=" + quote(path, safe="/"))
                    return
                await _send_error(send, 401, exc.code, exc.message, {"WWW-Authenticate": CHALLENGE})
                return
            except AuthError as exc:
                await _send_error(send, 400, exc.code, exc.message)
                return
        if principal is None:
            if not self.anonymous_allowed(scope):
                if _wants_html(scope):
                    await _redirect(send, "/login?next=" + quote(path, safe="/"))
                    return
                await _send_error(send, 401, "UNAUTHENTICATED", NOT_AUTHENTICATED, {"WWW-Authenticate": CHALLENGE})
                return
        else:
            method = scope["method"]
            cookie_write = principal.auth_method == "session" and method not in SAFE_METHODS
            if cookie_write and path not in FORM_PATHS and not path.startswith(UI_FORM_PREFIXES) \
                    and not self.sessions.check_csrf(
                    state.get("session_id", ""), _header(scope, CSRF_HEADER)):
                await _send_error(send, 403, "PERMISSION_DENIED",
                                  f"Missing or invalid {CSRF_HEADER} header for a cookie-authenticated write.")
                return
            if self.enforce_read_only and principal.read_only and not read_only_allows(method, path):
                await _send_error(send, 403, "PERMISSION_DENIED", "This token is read-only.")
                return
        state["principal"] = principal
        if principal is not None:
            # The per-principal budget: one identity cannot dodge limits by spreading over addresses.
            refused = await limit_principal(scope, f"{principal.kind}:{principal.id}")
            if refused is not None:
                await refused.respond(send)
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    for key, value in scope["headers"]:
        if key == wanted:
            return value.decode("latin-1")
    return None
