"""The browser login form and logout: plain server-rendered HTML, every value escaped.

The login form is protected by a signed double-submit CSRF token (cookie + hidden field); logout by the
session's own CSRF token. A UI layer may restyle the page; the fields and rules stay.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from auth.backends import client_address
from auth.errors import AuthError, LockedOut, Unavailable
from auth.identity import Identity
from auth.ldap import LdapUnavailable
from auth.sessions import COOKIE_NAME, CSRF_COOKIE_NAME
from gateway.routes.sso_logout import end_session, provider_logout_page

router = APIRouter()
MAX_FIELD = 4096
RETRY_AFTER_SECONDS = 5

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - mlgate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/ui.css">
<script defer src="/static/login.js"></script></head>
<body>
<header class="top"><div class="bar"><span class="brand">mlgate</span></div></header>
<main class="login card">
<h1>Sign in to mlgate</h1>
{message}
{form}
{providers}
</main>
</body></html>
"""

_FORM = """<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"""
FORM_TURNED_OFF = "Password sign-in is turned off here; sign in with your identity provider below."


def locked_out_message(retry_after: int) -> str:
    """What a locked-out person reads: why, and when to try again (the Retry-After header, in words)."""
    wait = f"{retry_after} seconds" if retry_after < 120 else f"{-(-retry_after // 60)} minutes"
    return f"Too many failed attempts for this account; try again in {wait}."


def _identity(request: Request) -> Identity:
    return request.app.state.identity


def safe_next(target: str | None) -> str:
    """A same-site path to return to after login; anything else (other hosts, schemes) becomes "/"."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target) or len(target) > 2000:
        return "/"
    return target


def password_form_enabled(request: Request) -> bool:
    """Whether /login offers and accepts the password form (``auth.oidc.password_form``)."""
    sso = _identity(request).sso
    return sso is None or sso.config.password_form


def _provider_buttons(request: Request, next_path: str) -> str:
    """One sign-in link per configured identity provider (auth.oidc)."""
    sso = _identity(request).sso
    if sso is None:
        return ""
    links = "".join(f'<li><a class="sso" href="/sso/{p.name}/login?{urlencode({"next": next_path})}">'
                    f"Sign in with {html.escape(p.label)}</a></li>" for p in sso.config.providers)
    return f"<ul>{links}</ul>"


def _login_page(request: Request, *, status: int = 200, message: str | None = None, username: str = "",
                next_path: str = "/", headers: dict[str, str] | None = None) -> Response:
    sessions = _identity(request).sessions
    token = sessions.new_form_token()
    shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    form = _FORM.format(csrf=html.escape(token), next=html.escape(safe_next(next_path)),
                        username=html.escape(username)) if password_form_enabled(request) else ""
    body = _PAGE.format(message=shown, form=form, providers=_provider_buttons(request, safe_next(next_path)))
    response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
    # Under the default no-referrer policy Chromium sends "Origin: null" with the form's POST, which the
    # cross-site write check refuses; same-origin keeps the Origin and still sends no Referer elsewhere.
    response.headers["Referrer-Policy"] = "same-origin"
    attrs = sessions.cookie_attributes(3600)
    attrs["path"] = "/login"
    response.set_cookie(CSRF_COOKIE_NAME, token, **attrs)
    return response


def _sso_notice(request: Request) -> str | None:
    """Why the browser's single sign-on session was ended or not extended, if that is why it is here."""
    identity = _identity(request)
    cookie = request.cookies.get(COOKIE_NAME)
    if identity.sso is None or not cookie:
        return None
    session_id = identity.sessions.session_id_of(cookie)
    return identity.sso.notice(session_id) if session_id else None


@router.get("/login", operation_id="auth.login_page", include_in_schema=False)
def login_page(request: Request) -> Response:
    """The sign-in form (saying why, when a single sign-on session was just ended or could not be confirmed)."""
    return _login_page(request, next_path=request.query_params.get("next", "/"), message=_sso_notice(request))


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_FIELD)
    return {k: v[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


@router.post("/login", operation_id="auth.login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Check the form's CSRF token and the password, then start a session and redirect."""
    identity = _identity(request)
    try:
        fields = await _form(request)
    except Exception:
        return _login_page(request, status=400, message="The form could not be read; try again.")
    username, password = fields.get("username", ""), fields.get("password", "")
    next_path = safe_next(fields.get("next"))
    if not password_form_enabled(request):
        # SSO-only deployment: no password is even looked at, so none can be guessed here.
        await run_in_threadpool(identity.auditor.record, "login", "failure", actor=None,
                                client=client_address(request), reason="password form turned off")
        return _login_page(request, status=403, message=FORM_TURNED_OFF, next_path=next_path)
    if not identity.sessions.check_form_token(request.cookies.get(CSRF_COOKIE_NAME), fields.get("csrf_token")):
        return _login_page(request, status=403, message="The form expired; please sign in again.",
                           username=username, next_path=next_path)
    if not username or not password:
        return _login_page(request, status=400, message="Enter a username and a password.", username=username,
                           next_path=next_path)
    try:
        principal = await run_in_threadpool(identity.password_login, username, password, client_address(request),
                                            "form")
        user = await run_in_threadpool(identity.store.user_by_id, principal.id)
        if user is None:
            raise AuthError("The user no longer exists.")
        cookie, _ = await run_in_threadpool(identity.sessions.start, user)
    except LockedOut as exc:
        return _login_page(request, status=429, message=locked_out_message(exc.retry_after),
                           username=username, next_path=next_path, headers={"Retry-After": str(exc.retry_after)})
    except Unavailable as exc:
        # Failed attempts could not be counted (the shared Redis is down), or the directory (LDAP) did not
        # answer: nobody signs in, and nobody is told their password was wrong when it was never checked.
        message = "Signing in is unavailable for a moment; try again shortly."
        if isinstance(exc, LdapUnavailable):
            message = f"{exc.message} Try again shortly."
        return _login_page(request, status=503, message=message, username=username, next_path=next_path,
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    except AuthError:
        return _login_page(request, status=401, message="Invalid username or password.", username=username,
                           next_path=next_path)
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE_NAME, cookie, **identity.sessions.cookie_attributes(
        identity.config.sessions.absolute_timeout_seconds))
    response.delete_cookie(CSRF_COOKIE_NAME, path="/login")
    return response


@router.post("/logout", operation_id="auth.logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session (``everywhere=1``: every session of the user) after checking its CSRF token."""
    identity = _identity(request)
    cookie = request.cookies.get(COOKIE_NAME)
    response = RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    attrs = identity.sessions.cookie_attributes(None)
    response.delete_cookie(COOKIE_NAME, path="/", secure=attrs["secure"], httponly=True, samesite="lax")
    if not cookie:
        return response
    try:
        active = await run_in_threadpool(identity.sessions.resolve, cookie)
    except AuthError:
        return response  # already ended: just clear the cookie
    try:
        fields = await _form(request)
    except Exception:
        fields = {}
    presented = fields.get("csrf_token") or request.headers.get("x-csrf-token")
    if not identity.sessions.check_csrf(active.session.id, presented):
        return HTMLResponse("<p>Logout needs a valid form token; go back and try again.</p>", status_code=403)
    # A session single sign-on started ends at the provider too (RP-initiated logout), and its sealed
    # refresh token is dropped: otherwise "Sign in with ..." would sign the person straight back in.
    ended = await run_in_threadpool(end_session, request, identity, active.session.id)
    everywhere = fields.get("everywhere") in ("1", "true", "on")
    if everywhere:
        await run_in_threadpool(identity.store.update_user, active.user.id)
        identity.user_changed(active.user.id)
    reason = ", ".join(r for r in ("everywhere" if everywhere else "", "sso" if ended else "") if r) or None
    await run_in_threadpool(identity.auditor.record, "logout", "success", actor=active.user.username,
                            client=client_address(request), reason=reason)
    if ended is not None:
        page = provider_logout_page(*ended)
        page.delete_cookie(COOKIE_NAME, path="/", secure=attrs["secure"], httponly=True, samesite="lax")
        return page
    return response
