"""Authentication middleware: authenticate once, put the Principal in ``scope["state"]["principal"]``.

This layer answers only "who is calling?". Whether the caller may do what it asks (including whether an
anonymous caller may, and what a read-only token may do) is decided once, from the route table, by the
authorizer (:mod:`gateway.authz`). Bad credentials therefore do not end the request here: the error is
kept in ``scope["state"]["authentication_error"]`` and the request goes on anonymously, so public
operations (the login page, probes) still work with a stale cookie, and every other operation is refused
by the authorizer with this error (401 ``WWW-Authenticate: Basic``, or 429 ``Retry-After`` when locked
out). A browser asking for a page is sent to ``/login`` instead (see :mod:`gateway.errors`).

What stays here is what must happen before any route runs: credentials in the query string are refused,
websockets are refused (no endpoint takes one), cookie-authenticated writes need the CSRF header, and
the per-principal rate limit.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.backends import Authenticator
from auth.errors import AuthError
from auth.identity import CacheMiss
from auth.scim.token import ScimToken, is_scim_path
from auth.sessions import COOKIE_NAME, CSRF_HEADER, SessionManager
from auth.tokens import query_carries_token
from gateway.middleware.ratelimit import (
    limit_anonymous,
    limit_principal,
    limit_sensitive,
)
from gateway.middleware.refusal import refuse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms on these paths carry their own CSRF field, checked by their handlers (the SSO sign-out form
# posts the session's token in a csrf_token field, gateway/routes/sso.py).
FORM_PATHS = frozenset({"/login", "/logout", "/sso/logout"})
# The web UI's forms (gateway/ui/forms.py checks their csrf_token field against the session's token).
UI_FORM_PREFIXES = ("/account/", "/admin/")
CHALLENGE = 'Basic realm="mlgate", charset="UTF-8"'
NOT_AUTHENTICATED = ("You are not authenticated. Send a username and password (MLFLOW_TRACKING_USERNAME / "
                     "MLFLOW_TRACKING_PASSWORD) or a token (MLFLOW_TRACKING_TOKEN).")
AUTHENTICATION_ERROR = "authentication_error"


def wants_html(scope: Scope) -> bool:
    """A browser navigating to a page (not an API call): answer refusals with the login page."""
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
    """Plain-ASGI authentication: one backend chain, one Principal (or none, with the reason kept)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, sessions: SessionManager, *,
                 always_consult_backends: bool = False, scim_token: ScimToken | None = None):
        self.app = app
        self.authenticator = authenticator
        self.sessions = sessions
        # Only to tell a SCIM request without the provisioning token (the authorizer refuses it) from one with.
        self.scim_token = scim_token
        # Header-based custom backends must be consulted even without Authorization or a cookie.
        self.always_consult_backends = always_consult_backends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No endpoint takes a websocket: refuse before anything runs (RFC 6455 close code 1008).
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = None
        query = scope.get("query_string", b"")
        if query and query_carries_token(parse_qsl(query.decode("latin-1"), keep_blank_values=True)):
            # RFC 6750 section 5.3: tokens in URLs leak through logs, histories and Referer headers.
            await refuse(send, 400, "INVALID_PARAMETER_VALUE",
                         "Credentials are not accepted in the query string; use the Authorization header.")
            return
        principal = None
        if is_scim_path(scope["path"]):
            # SCIM takes its provisioning token alone (the authorizer checks it): a user's cookie or token is
            # not even looked at, so no account's credentials can provision, and no failed SCIM call counts
            # against an account's lockout. A missing or wrong provisioning token is a request without an
            # identity: it spends the address's anonymous budget, so guesses are not allowed per_client's rate.
            if self.scim_token is None or not self.scim_token.matches(_header(scope, "authorization")):
                refused = await limit_anonymous(scope)
                if refused is not None:
                    await refused.respond(send)
                    return
            await self.app(scope, receive, send)
            return
        if self.always_consult_backends or _has_credentials(scope):
            connection = HTTPConnection(scope)
            try:
                try:
                    # A cached credential is answered here; a hash or a lookup goes to a worker thread.
                    principal = self.authenticator.authenticate_cached(connection)
                except CacheMiss:
                    principal = await anyio.to_thread.run_sync(self.authenticator.authenticate, connection)
            except AuthError as exc:
                # Decided by the authorizer: refused on every operation that is not public.
                state[AUTHENTICATION_ERROR] = exc
        if principal is None:
            # Failed or no credentials: the tight budgets.
            refused = await limit_sensitive(scope, None) or await limit_anonymous(scope)
            if refused is not None:
                await refused.respond(send)
                return
        if principal is not None:
            method = scope["method"]
            cookie_write = principal.auth_method == "session" and method not in SAFE_METHODS
            if cookie_write and scope["path"] not in FORM_PATHS and not scope["path"].startswith(UI_FORM_PREFIXES) \
                    and not self.sessions.check_csrf(
                    state.get("session_id", ""), _header(scope, CSRF_HEADER)):
                await refuse(send, 403, "PERMISSION_DENIED",
                             f"Missing or invalid {CSRF_HEADER} header for a cookie-authenticated write.")
                return
            state["principal"] = principal
            # The per-principal budget: one identity cannot dodge limits by spreading over addresses.
            refused = await limit_sensitive(scope, principal) or await limit_principal(
                scope, f"{principal.kind}:{principal.id}")
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
