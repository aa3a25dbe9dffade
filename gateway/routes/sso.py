"""Single sign-on routes: ``/sso/<provider>/login``, ``/sso/<provider>/callback`` and ``/sso/logout``.

The pending sign-in (state, nonce, PKCE verifier, where to go next) travels in a short-lived signed
cookie scoped to ``/sso/``, so nothing is stored before the provider answers. Every failure a user can
act on gets a plain page saying what happened; no user, link or session exists until every check passed.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from auth.backends import client_address
from auth.errors import AuthError
from auth.identity import Identity
from auth.oidc import (
    IssuerMismatch,
    NotAllowed,
    PendingLogin,
    ProviderClient,
    ProviderMisconfigured,
    ProviderUnreachable,
    StateMismatch,
    TokenRejected,
    authorization_url,
    check_state,
    new_pending_login,
)
from auth.oidc_accounts import check_allowed, identity_from_claims
from auth.sessions import COOKIE_NAME
from gateway.context import AppServices
from gateway.routes.login import safe_next
from gateway.routes.sso_logout import end_session

router = APIRouter()
STATE_COOKIE = "mlgate_sso"
STATE_PATH = "/sso/"
# The time a person may spend on the provider's login pages.
STATE_MAX_AGE = 600
# The state cookie's signer (built by create_app, gateway.context.Services.sso_state_signer) uses this salt.
SSO_STATE_SALT = "mlgate-sso-state"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - mlgate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/ui.css"></head>
<body>
<header class="top"><div class="bar"><span class="brand">mlgate</span></div></header>
<main class="login card">
<h1>{title}</h1>
{body}
</main></body></html>
"""

# What each failure means for the person in front of the browser, and its status code.
_FAILURES: dict[type, tuple[int, str]] = {
    IssuerMismatch: (502, "Single sign-on is misconfigured"),  # before its base class, ProviderUnreachable
    ProviderUnreachable: (502, "The identity provider is unreachable"),
    ProviderMisconfigured: (502, "Single sign-on is misconfigured"),
    StateMismatch: (400, "This sign-in attempt could not be verified"),
    TokenRejected: (401, "The identity provider's answer was refused"),
    NotAllowed: (403, "You cannot sign in to mlgate"),
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store"})


def _failure_page(exc: AuthError) -> HTMLResponse:
    status, title = next(((s, t) for kind, (s, t) in _FAILURES.items() if isinstance(exc, kind)),
                         (400, "Sign-in failed"))
    body = (f'<p role="alert">{html.escape(exc.message)}</p>'
            '<p><a href="/login">Back to the sign-in page</a></p>')
    return _page(title, body, status)


def _provider_client(identity: Identity, name: str) -> ProviderClient | None:
    sso = identity.sso
    return sso.client(name) if sso is not None else None


def _redirect_uri(request: Request, name: str, configured: str | None = None) -> str:
    # Must equal a redirect URI registered at the provider, character for character.
    return configured or f"{str(request.base_url).rstrip('/')}/sso/{name}/callback"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _unknown_provider() -> HTMLResponse:
    return _page("Unknown sign-in provider", '<p role="alert">No identity provider of that name is configured.</p>'
                 '<p><a href="/login">Back to the sign-in page</a></p>', 404)


@router.get("/sso/{provider}/login", operation_id="auth.sso_login", include_in_schema=False)
def sso_login(request: Request, provider: str, services: AppServices) -> Response:
    """Send the browser to the provider: authorization code flow with PKCE S256, state and nonce."""
    client = _provider_client(services.identity, provider)
    if client is None:
        return _unknown_provider()
    configured = client.provider.redirect_uri
    if configured is not None and _origin(configured) != _origin(str(request.base_url)):
        # The provider would refuse the redirect URI this host makes (its own error page, no way back):
        # start again at the registered host, where the state cookie will also be readable at the callback.
        target = f"{_origin(configured)}/sso/{provider}/login"
        if "next" in request.query_params:
            target += "?" + urlencode({"next": safe_next(request.query_params["next"])})
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    try:
        metadata = client.metadata()
    except AuthError as exc:
        return _failure_page(exc)
    pending = new_pending_login(client.provider, safe_next(request.query_params.get("next")))
    response = RedirectResponse(authorization_url(metadata, client.provider, pending,
                                                  _redirect_uri(request, provider, configured)),
                                status_code=303, headers={"Cache-Control": "no-store"})
    attrs = services.identity.sessions.cookie_attributes(STATE_MAX_AGE)
    attrs["path"] = STATE_PATH
    response.set_cookie(STATE_COOKIE, services.sso_state_signer.dumps(pending.to_dict()), **attrs)
    return response


def _pending(request: Request, signer: URLSafeTimedSerializer) -> PendingLogin:
    cookie = request.cookies.get(STATE_COOKIE)
    if not cookie:
        raise StateMismatch("This browser has no sign-in in progress (it expired, or cookies are blocked); "
                            "start again.")
    try:
        return PendingLogin.from_dict(signer.loads(cookie, max_age=STATE_MAX_AGE))
    except BadSignature:
        raise StateMismatch("The sign-in attempt expired or was altered; start again.") from None


@router.get("/sso/{provider}/callback", operation_id="auth.sso_callback", include_in_schema=False)
def sso_callback(request: Request, provider: str, services: AppServices) -> Response:
    """Check state, exchange the code, validate the ID token, provision the user and start a session."""
    identity = services.identity
    client = _provider_client(identity, provider)
    if client is None:
        return _unknown_provider()
    params = request.query_params
    address = client_address(request)
    user = None
    try:
        pending = _pending(request, services.sso_state_signer)
        check_state(pending, params.get("state"), provider)
        if params.get("error"):
            # RFC 6749 section 4.1.2.1: the provider refused (the user cancelled, or no consent).
            raise NotAllowed("The identity provider did not sign you in "
                             f"({params.get('error')[:64]}); start again if this was a mistake.")
        code = params.get("code")
        if not code:
            raise StateMismatch("The identity provider's answer has no authorization code; start again.")
        tokens = client.exchange_code(code, pending.code_verifier,
                                      _redirect_uri(request, provider, client.provider.redirect_uri))
        claims = client.validate_id_token(tokens["id_token"], pending.nonce, identity.clock())
        who = identity_from_claims(client.provider, claims)
        check_allowed(client.provider, who)
        user = identity.sso.accounts.provision(client.provider, who)
        cookie, session_id = identity.sessions.start(user)
        revalidate_at = int((identity.clock() + client.provider.revalidate_seconds) * 1000)
        try:
            # The provider's tokens stay on the server, sealed: the refresh token (when the provider grants
            # one) lets mlgate re-validate the session without the browser, the ID token is the logout hint.
            vault, refresh_token = identity.sso.vault, tokens.get("refresh_token")
            identity.sso.accounts.record_session(
                session_id, provider, revalidate_at,
                refresh_token=(vault.seal(refresh_token, owner=session_id, kind="refresh")
                               if isinstance(refresh_token, str) and refresh_token else None),
                id_token=vault.seal(tokens["id_token"], owner=session_id, kind="id"))
        except Exception:
            identity.sessions.end(session_id)  # never leave an SSO session that escapes re-validation
            raise
    except AuthError as exc:
        identity.auditor.record("login", "failure", actor=user.username if user else None, client=address,
                                reason=f"sso:{provider}: {exc.message}")
        response = _failure_page(exc)
        response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
        return response
    identity.auditor.record("login", "success", actor=user.username, client=address, reason=f"sso:{provider}")
    response = RedirectResponse(pending.next_path, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE_NAME, cookie, **identity.sessions.cookie_attributes(
        identity.config.sessions.absolute_timeout_seconds))
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
    return response


@router.get("/sso/logout", operation_id="auth.sso_logout_page", include_in_schema=False)
def sso_logout_page(request: Request, services: AppServices) -> Response:
    """A sign-out button (a form carrying the session's CSRF token)."""
    identity = services.identity
    cookie = request.cookies.get(COOKIE_NAME)
    try:
        active = identity.sessions.resolve(cookie) if cookie else None
    except AuthError:
        active = None
    if active is None:
        return RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    token = html.escape(identity.sessions.csrf_token(active.session.id))
    body = (f"<p>Signed in as {html.escape(active.user.username)}.</p>"
            f'<form method="post" action="/sso/logout"><input type="hidden" name="csrf_token" value="{token}">'
            '<button type="submit">Sign out</button></form>')
    response = _page("Sign out of mlgate", body)
    # The form's POST must carry this page's Origin (the cross-site write check refuses "null", which
    # Chromium sends under no-referrer), and may be redirected on to the provider's logout endpoint.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self'{_logout_origin(request, identity, active.session.id)}")
    return response


def _logout_origin(request: Request, identity: Identity, session_id: str) -> str:
    """" <origin>" of the provider's end-session endpoint for an SSO session, else ""."""
    info = identity.sso.accounts.session_info(session_id) if identity.sso is not None else None
    client = _provider_client(identity, info[0]) if info else None
    if client is None:
        return ""
    try:
        endpoint = client.metadata().end_session_endpoint
    except AuthError:
        return ""
    if not endpoint:
        return ""
    parts = urlsplit(endpoint)
    return f" {parts.scheme}://{parts.netloc}"


@router.post("/sso/logout", operation_id="auth.sso_logout", include_in_schema=False)
async def sso_logout(request: Request, services: AppServices) -> Response:
    """End the mlgate session, then the provider's (RP-initiated logout) when the session came from one."""
    identity = services.identity
    cookie = request.cookies.get(COOKIE_NAME)
    target = "/login"
    if cookie:
        try:
            active = await run_in_threadpool(identity.sessions.resolve, cookie)
        except AuthError:
            active = None
        if active is not None:
            try:
                form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
            except Exception:
                form = {}
            presented = form.get("csrf_token") or request.headers.get("x-csrf-token")
            if not isinstance(presented, str) or not identity.sessions.check_csrf(active.session.id, presented):
                return _page("Sign-out failed", '<p role="alert">The sign-out form expired; go back and try '
                             "again.</p>", 403)
            ended = await run_in_threadpool(end_session, request, identity, active.session.id)
            # This page's CSP allows the provider's origin in form-action, so a redirect is enough here.
            target = ended[1] if ended else target
            await run_in_threadpool(identity.auditor.record, "logout", "success", actor=active.user.username,
                                    client=client_address(request), reason="sso")
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    attrs = identity.sessions.cookie_attributes(None)
    response.delete_cookie(COOKIE_NAME, path="/", secure=attrs["secure"], httponly=True, samesite="lax")
    return response
