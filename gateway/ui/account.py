"""My account: who I am, my groups, what I can see and why, my access tokens, my password.

Every change goes through :class:`auth.accounts.Accounts` (the same rules, checks and audit records as the
token and password API); every form is CSRF-checked (:mod:`gateway.ui.forms`). What I can see is read
under my own visibility scope and explained by ``decide`` with the rule that decided it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.backends import client_address
from auth.errors import AuthError
from auth.flash import MAX_AGE as NOTICE_MAX_AGE
from auth.grants import list_grants
from gateway.authz import subject_of
from gateway.grant_selectors import shown_rows
from gateway.routes import admin_store
from gateway.ui.forms import FORM
from gateway.ui.render import page
from policies.model import Resource
from tracking.db.registry_tables import registered_models
from tracking.errors import MlflowError
from tracking.scope import request_workspace, visibility_scope
from tracking.search.experiments_sql import build_experiment_search, experiment_ids_query
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json
from tracking.store.registry_search import search_registered_models

router = APIRouter(include_in_schema=False)
MAX_SHOWN = 50  # resources explained on the page
DONE = {"revoked": "The token was revoked.", "password": "Your password was changed."}
NO_STORE = {"Cache-Control": "no-store"}
# The new token's secret travels from the POST to the page that shows it in this cookie (auth/flash.py).
NEW_TOKEN_COOKIE = "mlgate_new_token"  # noqa: S105 (a cookie name)


def _access(request: Request, principal) -> dict:
    """Experiments and models I can see (first MAX_SHOWN each), each with my highest permission and why."""
    policy = request.app.state.policy_holder.current()
    subject = subject_of(principal)
    scope = visibility_scope(request)
    search = build_experiment_search(None, ["name ASC"], "ACTIVE_ONLY")
    with tracking_of(request).engine.connect() as conn:
        ids = list(conn.execute(experiment_ids_query(search, scope.experiments, 0, MAX_SHOWN + 1)).scalars())
        experiments = experiments_to_json(conn, ids[:MAX_SHOWN]) if ids else []
        models = search_registered_models(conn, filter_string=None, max_results=MAX_SHOWN, order_by=["name ASC"],
                                          page_token=None, scope=scope.registered_models)
        stored = shown_rows(conn, [g for key in [subject.key, *(f"group:{g}" for g in sorted(subject.groups))]
                                   for g in list_grants(conn, subject=key)])
        model_ids = {row.name: row.model_id for row in conn.execute(
            select(registered_models.c.name, registered_models.c.model_id)
            .where(registered_models.c.workspace == request_workspace(request),
                   registered_models.c.name.in_([m["name"] for m in models.items])))} if models.items else {}

    def best(resource: Resource) -> dict:
        for action in ("MANAGE", "EDIT", "READ"):
            found = admin_store.explain(policy, subject, resource, action)
            if found["allowed"]:
                return found
        return admin_store.explain(policy, subject, resource, "READ")

    return {
        "experiments": [{"id": e["experiment_id"], "name": e["name"],
                         **best(Resource.experiment(e["experiment_id"], e["name"]))} for e in experiments],
        "models": [{"name": m["name"], **best(Resource.registered_model(model_ids.get(m["name"]), m["name"]))}
                   for m in models.items],
        "more_experiments": len(ids) > MAX_SHOWN, "more_models": models.next_page_token is not None,
        "grants": [admin_store.grant_json(g) for g in stored],
    }


def _account_page(request: Request, *, status: int = 200, error: str | None = None, done: str | None = None,
                  new_token: dict | None = None) -> Response:
    principal = request.state.principal
    accounts = request.app.state.accounts
    user = accounts.store.user_by_id(principal.id)
    tokens = [t.to_json() for t in accounts.list_tokens(principal)]
    return page(request, "account.html", title="My account", section="account", status=status, error=error,
                done=done, new_token=new_token, principal=principal, tokens=tokens,
                has_password=bool(user is not None and user.kind == "user" and user.password_hash),
                max_days=request.app.state.identity.config.tokens.max_lifetime_days,
                server_url=str(request.base_url).rstrip("/"), **_access(request, principal),
                headers=NO_STORE)


def _new_token(request: Request) -> dict | None:
    """The token created just before this page (its one-time cookie), or None."""
    session_id = getattr(request.state, "session_id", None)
    raw = request.cookies.get(NEW_TOKEN_COOKIE)
    if not session_id or not raw:
        return None
    text = request.app.state.identity.sessions.notices.open(raw, session_id=session_id)
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    return found if isinstance(found, dict) and {"name", "secret"} <= found.keys() else None


@router.get("/account", operation_id="ui.account")
def account_page(request: Request) -> Response:
    """Who I am, my groups, what I can access and why, my tokens, and the password form; a token created
    just before is shown here once (its cookie is deleted by this answer, so a reload does not show it)."""
    response = _account_page(request, done=DONE.get(request.query_params.get("done", "")),
                             new_token=_new_token(request))
    if NEW_TOKEN_COOKIE in request.cookies:
        sessions = request.app.state.identity.sessions
        response.delete_cookie(NEW_TOKEN_COOKIE, path="/account", secure=sessions.secure, httponly=True,
                               samesite="strict")
    return response


def _days(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or len(text.strip()) > 5:
        raise MlflowError("Days must be a whole number.", "INVALID_PARAMETER_VALUE")
    return int(text.strip())


@router.post("/account/tokens/create", operation_id="ui.account.token_create")
def create_token(request: Request, fields: dict = FORM) -> Response:
    """Issue a token for myself, then redirect to /account (redirect-after-post: a reload creates nothing),
    which shows its secret once from a short-lived sealed cookie bound to this session (never in a URL)."""
    try:
        issued = request.app.state.accounts.create_token(
            request.state.principal, fields.get("name", "").strip(), _days(fields.get("days", "")),
            read_only=fields.get("read_only") == "on", client=client_address(request),
            scope=fields.get("scope", "").split(), cidrs=fields.get("cidrs", "").replace(",", " ").split())
    except (AuthError, MlflowError) as exc:
        return _account_page(request, status=400, error=exc.message)
    session_id = getattr(request.state, "session_id", None)
    if not session_id:  # the forms need a session; without one, the secret is on this answer only
        return _account_page(request, new_token={"secret": issued.token, "name": issued.row.name})
    sessions = request.app.state.identity.sessions
    sealed = sessions.notices.seal(json.dumps({"name": issued.row.name, "secret": issued.token}),
                                   session_id=session_id)
    response = RedirectResponse("/account", status_code=303, headers=NO_STORE)
    response.set_cookie(NEW_TOKEN_COOKIE, sealed, max_age=NOTICE_MAX_AGE, path="/account", secure=sessions.secure,
                        httponly=True, samesite="strict")
    return response


@router.post("/account/tokens/revoke", operation_id="ui.account.token_revoke")
def revoke_token(request: Request, fields: dict = FORM) -> Response:
    """Revoke one of my tokens (someone else's token id answers "not found")."""
    try:
        request.app.state.accounts.revoke_token(request.state.principal, fields.get("token_id", "")[:64],
                                                client=client_address(request))
    except AuthError as exc:
        return _account_page(request, status=400, error=exc.message)
    return RedirectResponse("/account?done=revoked", status_code=303)


@router.post("/account/password", operation_id="ui.account.password")
def change_password(request: Request, fields: dict = FORM) -> Response:
    """Change my password; the current one is required."""
    principal = request.state.principal
    new, repeat = fields.get("new_password", ""), fields.get("repeat_password", "")
    if new != repeat:
        return _account_page(request, status=400, error="The new passwords do not match.")
    try:
        request.app.state.accounts.change_password(principal, principal.name, new,
                                                   fields.get("current_password") or None,
                                                   client=client_address(request))
    except AuthError as exc:
        return _account_page(request, status=400, error=exc.message)
    return RedirectResponse("/account?done=password", status_code=303)
