"""Ending a session that single sign-on started: mlgate's session, its provider tokens, then the provider's.

Both sign-out controls (the layout's button posting to ``/logout`` and the ``/sso/logout`` page) end here,
so an SSO user is never signed out of mlgate alone while "Sign in with ..." would let them straight back in.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse

from auth.errors import AuthError
from auth.identity import Identity
from auth.oidc import end_session_url

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing out - mlgate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="0;url='{url}'">
<link rel="stylesheet" href="/static/ui.css"></head>
<body>
<header class="top"><div class="bar"><span class="brand">mlgate</span></div></header>
<main class="login card">
<h1>Signed out of mlgate</h1>
<p>Now signing you out of {label} as well.</p>
<p><a href="{url}">Continue to {label}</a> if nothing happens.</p>
</main></body></html>
"""


def end_session(request: Request, identity: Identity, session_id: str) -> tuple[str, str] | None:
    """End the session and forget its provider tokens; (provider label, provider logout URL) for an SSO one.

    None for a password session, or when the provider has no end-session endpoint (or cannot be asked now:
    mlgate's session is over either way, the provider's stays as it would without RP-initiated logout).
    """
    sso = identity.sso
    info = sso.provider_tokens(session_id) if sso is not None else None
    identity.sessions.end(session_id)
    if sso is None or info is None:
        return None
    sso.accounts.end_session(session_id)  # the sealed refresh and ID tokens are dropped with it
    client = sso.client(info[0])
    if client is None:
        return None
    try:
        metadata = client.metadata()
    except AuthError:
        return None
    url = end_session_url(metadata, client.provider, f"{str(request.base_url).rstrip('/')}/login",
                          id_token_hint=info[1])
    return (client.provider.label, url) if url else None


def provider_logout_page(label: str, url: str) -> HTMLResponse:
    """A page that sends the browser on to the provider's logout endpoint (OIDC RP-Initiated Logout 1.0 section 2).

    A page rather than a redirect: the sign-out form sits on pages whose CSP says ``form-action 'self'``,
    and browsers apply that to the redirects after a form submission too. The navigation is a top-level
    GET, so the provider sees its own (SameSite=Lax) session cookie and can end that session.
    """
    # urlencode() already escaped quotes in the parameters; the endpoint itself comes from discovery.
    quoted = html.escape(url.replace("'", "%27"), quote=True)
    response = HTMLResponse(_PAGE.format(url=quoted, label=html.escape(label)),
                            headers={"Cache-Control": "no-store"})
    # The provider learns nothing about the mlgate page the user was on.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
