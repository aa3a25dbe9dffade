"""MLflow-compatible user API (what ``get_app_client("basic-auth")`` calls) plus users/current and tokens.

Mounted under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``. The rules (admins manage users; a user
changes their own password with the current one) live in :mod:`auth.accounts`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request

from auth.backends import client_address
from auth.errors import Unauthenticated
from auth.principal import Principal
from gateway.context import AppServices, Caller
from tracking.api.body import Args, request_args
from tracking.api.responses import JSONBody, ok

router = APIRouter()
ARGS = Depends(request_args)


def principal_of(request: Request) -> Principal:
    """The authenticated caller (the middleware guarantees one outside public paths)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("You are not authenticated.")
    return principal


def _client(request: Request) -> str | None:
    return client_address(request)


@router.post("/users/create", operation_id="users.create")
def create_user(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Create a user (admins only); ``service_account: true`` makes a token-only account."""
    user = services.accounts.create_user(
        caller, args.str("username", default="", max_length=255) or "",
        args.str("password", default=None, max_length=4096), client=_client(request),
        is_admin=bool(args.bool("is_admin", default=False)),
        service_account=bool(args.bool("service_account", default=False)))
    return ok({"user": user.to_json()})


@router.get("/users/get", operation_id="users.get")
def get_user(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """A user's id, name and admin flag (admins, or the user themself)."""
    user = services.accounts.get_user(caller, args.str("username", required=True))
    return ok({"user": user.to_json()})


@router.get("/users/list", operation_id="users.list")
def list_users(request: Request, services: AppServices, caller: Caller) -> JSONBody:
    """Every user (admins only)."""
    users = services.accounts.list_users(caller)
    return ok({"users": [u.to_json() for u in users]})


@router.get("/users/current", operation_id="users.current")
def current_user(request: Request, services: AppServices, caller: Caller) -> JSONBody:
    """Who the caller is, how they authenticated, and (for browser sessions) the CSRF token for writes."""
    principal = caller
    payload = {
        "user": {"id": principal.id, "username": principal.name, "is_admin": principal.is_admin},
        "kind": principal.kind,
        "groups": sorted(principal.groups),
        "auth_method": principal.auth_method,
        "read_only": principal.read_only,
        "is_basic_auth": principal.auth_method == "basic",
    }
    session_id = getattr(request.state, "session_id", None)
    if principal.auth_method == "session" and session_id:
        payload["csrf_token"] = services.identity.sessions.csrf_token(session_id)
    return ok(payload)


@router.patch("/users/update-password", operation_id="users.update_password")
def update_password(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Set a password: admins for anyone; users for themselves with ``current_password``."""
    services.accounts.change_password(
        caller, args.str("username", required=True, max_length=255),
        args.str("password", default="", max_length=4096) or "",
        args.str("current_password", default=None, max_length=4096), client=_client(request))
    return ok({})


@router.patch("/users/update-admin", operation_id="users.update_admin")
def update_admin(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Grant or remove admin rights (admins only)."""
    if "is_admin" not in args:
        args.str("is_admin", required=True)
    services.accounts.set_admin(caller, args.str("username", required=True, max_length=255),
                                   bool(args.bool("is_admin")), client=_client(request))
    return ok({})


@router.patch("/users/update-disabled", operation_id="users.update_disabled")
def update_disabled(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Disable or re-enable a user (admins only): ends its sessions, tokens and cached logins at once."""
    if "disabled" not in args:
        args.str("disabled", required=True)
    services.accounts.set_disabled(caller, args.str("username", required=True, max_length=255),
                                      bool(args.bool("disabled")), client=_client(request))
    return ok({})


@router.delete("/users/delete", operation_id="users.delete")
def delete_user(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Delete a user (admins only, not oneself)."""
    services.accounts.delete_user(caller, args.str("username", required=True, max_length=255),
                                     client=_client(request))
    return ok({})


@router.post("/users/tokens/create", operation_id="tokens.create")
def create_token(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Issue a personal access token; the secret is in this response only."""
    issued = services.accounts.create_token(
        caller, args.str("name", required=True, max_length=255),
        args.int("expires_in_days", required=True), username=args.str("username", default=None, max_length=255),
        read_only=bool(args.bool("read_only", default=False)), client=_client(request),
        scope=args.str_list("scope"), cidrs=args.str_list("cidrs"))
    return ok({"token": issued.token, "token_info": issued.row.to_json()})


@router.get("/users/tokens/list", operation_id="tokens.list")
def list_tokens(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """The caller's tokens (admins: any account's), without secrets."""
    rows = services.accounts.list_tokens(caller, args.str("username", default=None))
    return ok({"tokens": [r.to_json() for r in rows]})


@router.post("/users/tokens/revoke", operation_id="tokens.revoke")
def revoke_token(request: Request, services: AppServices, caller: Caller, args: Args = ARGS) -> JSONBody:
    """Revoke a token by id (its owner or an admin)."""
    services.accounts.revoke_token(caller, args.str("token_id", required=True, max_length=64),
                                      client=_client(request))
    return ok({})
