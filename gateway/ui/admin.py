"""Admin pages (administrators only, like the admin API): accounts, groups, grants, audit log, policy.

Every change calls what the REST API calls: :class:`auth.accounts.Accounts` for accounts, and the admin
API's own handlers (:mod:`gateway.routes.admin`) for groups and grants, given the form's fields as their
arguments, so checks, conflicts with the policy file, audit records and cross-process invalidation are
the same code. Every form is CSRF-checked (:mod:`gateway.ui.forms`). Success redirects (303) to the page
with a fixed message; a refusal re-renders the page with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.backends import client_address
from auth.errors import AuthError
from auth.grants import list_grants
from gateway.routes import admin as admin_api
from gateway.routes import admin_policy, admin_store
from gateway.ui.forms import FORM
from gateway.ui.render import page
from policies.file import PolicyFileError, load_policy_text
from policies.model import Resource, Subject
from policies.routes import Lookup
from tracking.api.body import Args
from tracking.errors import MlflowError
from tracking.services import tracking_of
from tracking.store.experiments import experiments_to_json, parse_experiment_id

router = APIRouter(include_in_schema=False)
AUDIT_PAGE = 50
LIST_PAGE = 100  # accounts and grants per page
MAX_POLICY_BYTES = 1024 * 1024
MAX_EXPLAINED_ACCOUNTS = 1000
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
DONE = {
    "user": "The account was created.", "updated": "The account was updated.", "group": "The group was created.",
    "group_deleted": "The group was deleted.", "member": "Group membership changed.",
    "grant": "The grant was saved.", "revoked": "The grant was revoked.",
}
NO_STORE = {"Cache-Control": "no-store"}


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _paged(request: Request, items: list, base: str, **keep: str) -> tuple[list, dict]:
    """One page of ``items`` (``?page=N``, from 1) and the pager's links."""
    text = request.query_params.get("page", "1")
    number = int(text) if text.isdigit() and 0 < len(text) < 7 and int(text) > 0 else 1
    shown = items[(number - 1) * LIST_PAGE:number * LIST_PAGE]
    kept = {k: v for k, v in keep.items() if v}
    links = {"shown": len(shown),
             "first_url": f"{base}?{urlencode(kept)}" if number > 1 else None,
             "next_url": f"{base}?{urlencode({**kept, 'page': number + 1})}" if len(items) > number * LIST_PAGE
             else None}
    return shown, links


def _attempt(request: Request, action: Callable[[], object], done: str, back: str,
             render: Callable[[str], Response]) -> Response:
    """Run one change; redirect with a fixed message, or show the refusal on the page (400/403/404)."""
    try:
        action()
    except (AuthError, MlflowError) as exc:
        return render(exc.message)
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}done={done}", status_code=303)


# --- accounts ---------------------------------------------------------------------------------------
def _users_page(request: Request, error: str | None = None) -> Response:
    with tracking_of(request).engine.connect() as conn:
        accounts, links = _paged(request, admin_store.list_accounts(conn), "/admin")
    return page(request, "admin_users.html", title="Users and service accounts", section="admin", tab="users",
                accounts=accounts, error=error, **links, done=None if error else _done(request),
                status=400 if error else 200, me=request.state.principal.name, headers=NO_STORE)


@router.get("/admin", operation_id="ui.admin.users")
def users_page(request: Request) -> Response:
    """Every account: kind, admin, disabled, groups; forms to create and change them."""
    return _users_page(request)


@router.post("/admin/users/create", operation_id="ui.admin.user_create")
def create_user(request: Request, fields: dict = FORM) -> Response:
    """Create a user (with a password) or a service account (token-only)."""
    service = fields.get("kind") == "service"

    def act():
        request.app.state.accounts.create_user(
            request.state.principal, fields.get("username", "").strip(),
            None if service else fields.get("password", ""), client=client_address(request),
            is_admin=fields.get("is_admin") == "on", service_account=service)
    return _attempt(request, act, "user", "/admin", lambda e: _users_page(request, e))


@router.post("/admin/users/update", operation_id="ui.admin.user_update")
def update_user(request: Request, fields: dict = FORM) -> Response:
    """Disable, enable, make or unmake admin, or reset the password of one account."""
    accounts, actor, client = request.app.state.accounts, request.state.principal, client_address(request)
    username, action = fields.get("username", ""), fields.get("action", "")
    actions = {
        "disable": lambda: accounts.set_disabled(actor, username, True, client=client),
        "enable": lambda: accounts.set_disabled(actor, username, False, client=client),
        "make_admin": lambda: accounts.set_admin(actor, username, True, client=client),
        "remove_admin": lambda: accounts.set_admin(actor, username, False, client=client),
        "reset_password": lambda: accounts.change_password(actor, username, fields.get("password", ""), None,
                                                           client=client),
    }
    if action not in actions:
        return _users_page(request, "Unknown action.")
    return _attempt(request, actions[action], "updated", "/admin", lambda e: _users_page(request, e))


# --- groups -----------------------------------------------------------------------------------------
def _groups_page(request: Request, error: str | None = None) -> Response:
    with tracking_of(request).engine.connect() as conn:
        groups = admin_store.list_groups(conn)
        usernames = [a["username"] for a in admin_store.list_accounts(conn)]
    return page(request, "admin_groups.html", title="Groups", section="admin", tab="groups", groups=groups,
                usernames=usernames, error=error, done=None if error else _done(request),
                status=400 if error else 200, headers=NO_STORE)


@router.get("/admin/groups", operation_id="ui.admin.groups")
def groups_page(request: Request) -> Response:
    """Every group with its members; forms to create, delete and change membership."""
    return _groups_page(request)


@router.post("/admin/groups/create", operation_id="ui.admin.group_create")
def create_group(request: Request, fields: dict = FORM) -> Response:
    """Create a group (the admin API's handler)."""
    return _attempt(request, lambda: admin_api.create_group(request, Args({"name": fields.get("name", "").strip()})),
                    "group", "/admin/groups", lambda e: _groups_page(request, e))


@router.post("/admin/groups/delete", operation_id="ui.admin.group_delete")
def delete_group(request: Request, fields: dict = FORM) -> Response:
    """Delete a group with its memberships and grants (the admin API's handler)."""
    return _attempt(request, lambda: admin_api.delete_group(request, Args({"name": fields.get("name", "")})),
                    "group_deleted", "/admin/groups", lambda e: _groups_page(request, e))


@router.post("/admin/groups/member", operation_id="ui.admin.group_member")
def change_member(request: Request, fields: dict = FORM) -> Response:
    """Add an account to a group or remove it (the admin API's handlers)."""
    args = Args({"group": fields.get("group", ""), "username": fields.get("username", "").strip()})
    handler = admin_api.remove_member if fields.get("op") == "remove" else admin_api.add_member
    return _attempt(request, lambda: handler(request, args), "member", "/admin/groups",
                    lambda e: _groups_page(request, e))


# --- grants -----------------------------------------------------------------------------------------
def _who_can_see(request: Request, conn, resource: Resource) -> dict:
    """Who may READ ``resource``: each enabled non-admin account with its highest permission and the deciding
    rule, the enabled administrators (they see everything), how many disabled accounts were left out (they
    cannot sign in or use a token), and whether the list was cut at :data:`MAX_EXPLAINED_ACCOUNTS`."""
    policy = request.app.state.policy_holder.current()
    accounts = admin_store.list_accounts(conn)
    checked = accounts[:MAX_EXPLAINED_ACCOUNTS]
    rows, admins, disabled = [], [], 0
    for account in checked:
        if account["disabled"]:
            disabled += 1
            continue
        subject = Subject(kind="service" if account["kind"] == "service" else "user", name=account["username"],
                          groups=frozenset(account["groups"]), is_admin=account["is_admin"])
        if policy.is_admin(subject):
            admins.append(account["username"])
            continue
        for action in ("MANAGE", "EDIT", "READ"):
            found = admin_store.explain(policy, subject, resource, action)
            if found["allowed"]:
                rows.append({"account": account, **found})
                break
    return {"rows": rows, "admins": admins, "disabled": disabled, "checked": len(checked), "total": len(accounts)}


def _grants_page(request: Request, error: str | None = None) -> Response:
    experiment_id = request.query_params.get("experiment_id", "")
    model = request.query_params.get("model", "")
    target, audience, selector = None, None, None
    with tracking_of(request).engine.connect() as conn:
        if experiment_id:
            found = experiments_to_json(conn, [parse_experiment_id(experiment_id)])
            if not found:
                raise MlflowError("The requested resource does not exist.", "RESOURCE_DOES_NOT_EXIST")
            target = {"kind": "Experiment", "name": found[0]["name"], "id": found[0]["experiment_id"]}
            selector = f"experiment:{found[0]['experiment_id']}"
            audience = _who_can_see(request, conn, Resource.experiment(found[0]["experiment_id"], found[0]["name"]))
        elif model:
            resource = request.app.state.authorizer.resolver.resolve(conn, Lookup.MODEL_NAME, model, None, None)
            if resource is None:
                raise MlflowError("The requested registered model does not exist.", "RESOURCE_DOES_NOT_EXIST")
            target = {"kind": "Registered model", "name": model, "id": resource.id}
            selector = f"model:{model}"
            audience = _who_can_see(request, conn, resource)
        grants = admin_store.grants_json(conn, list_grants(conn))
    if selector is not None:
        grants = [g for g in grants if g["resource"] == selector]
    grants, links = _paged(request, grants, "/admin/grants", experiment_id=experiment_id, model=model)
    back = "/admin/grants" + (f"?{urlencode({'experiment_id': experiment_id})}" if experiment_id
                              else f"?{urlencode({'model': model})}" if model else "")
    return page(request, "admin_grants.html", title="Grants", section="admin", tab="grants", grants=grants,
                target=target, audience=audience, selector=selector or "", back=back, permissions=PERMISSIONS,
                experiment_id=experiment_id, model=model, error=error, done=None if error else _done(request), **links,
                status=400 if error else 200, headers=NO_STORE)


@router.get("/admin/grants", operation_id="ui.admin.grants")
def grants_page(request: Request) -> Response:
    """Stored grants (all, or on one experiment or model with who can see it and why); grant and revoke."""
    return _grants_page(request)


def _back(fields: dict) -> str:
    back = fields.get("back", "/admin/grants")
    return back if back.startswith("/admin/grants") and "\\" not in back and "//" not in back else "/admin/grants"


@router.post("/admin/grants/put", operation_id="ui.admin.grant_put")
def put_grant(request: Request, fields: dict = FORM) -> Response:
    """Grant (or change) a permission (the admin API's handler: policy conflicts refused, audited)."""
    args = Args({k: fields.get(k, "").strip() for k in ("subject", "resource", "permission")})
    return _attempt(request, lambda: admin_api.put_stored_grant(request, args), "grant", _back(fields),
                    lambda e: _grants_page(request, e))


@router.post("/admin/grants/revoke", operation_id="ui.admin.grant_revoke")
def revoke_grant(request: Request, fields: dict = FORM) -> Response:
    """Revoke a stored grant (the admin API's handler)."""
    args = Args({k: fields.get(k, "") for k in ("subject", "resource")})
    return _attempt(request, lambda: admin_api.revoke_stored_grant(request, args), "revoked", _back(fields),
                    lambda e: _grants_page(request, e))


# --- audit log ----------------------------------------------------------------------------------------
def _epoch_ms(text: str, field: str) -> int | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MlflowError(f"{field}: expected a date and time like 2026-01-31T13:00.",
                          "INVALID_PARAMETER_VALUE") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@router.get("/admin/audit", operation_id="ui.admin.audit")
def audit_page(request: Request) -> Response:
    """The audit log, newest first, filtered by principal, action, outcome, workspace and time; paged by id."""
    q = request.query_params
    filters = {"actor": q.get("actor", "")[:300], "action": q.get("action", "")[:64],
               "outcome": q.get("outcome", "")[:16], "workspace": q.get("workspace", "")[:63],
               "since": q.get("since", "")[:40], "until": q.get("until", "")[:40]}
    before = q.get("before", "")
    records, error = [], None
    try:
        before_id = int(before) if before.isascii() and before.isdigit() else None
        with tracking_of(request).engine.connect() as conn:
            records = admin_store.audit_records(
                conn, actor=filters["actor"] or None, action=filters["action"] or None,
                outcome=filters["outcome"] or None, workspace=filters["workspace"] or None,
                since=_epoch_ms(filters["since"], "From"),
                until=_epoch_ms(filters["until"], "Until"), before_id=before_id, limit=AUDIT_PAGE + 1)
    except MlflowError as exc:
        error = exc.message
    older = None
    if len(records) > AUDIT_PAGE:
        records = records[1:]  # oldest first: the extra one is the oldest
        older = "/admin/audit?" + urlencode({**{k: v for k, v in filters.items() if v}, "before": records[0]["id"]})
    newest_first = list(reversed(records))
    return page(request, "admin_audit.html", title="Audit log", section="admin", tab="audit", records=newest_first,
                filters=filters, error=error, status=400 if error else 200, shown=len(records),
                first_url=("/admin/audit?" + urlencode({k: v for k, v in filters.items() if v})) if before else None,
                next_url=older, headers=NO_STORE)


# --- effective policy -------------------------------------------------------------------------------
POLICY_SOURCE = "ui_policy_source"  # app.state attribute: the policy file as read at start


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def remember_policy_file(app: FastAPI) -> None:
    """Keep the policy file's bytes and sha256 as the server loaded them, for the policy page.

    Called while the app is built, right after the file was loaded; the bytes are parsed again and compared
    with the loaded policy, so a file replaced in between is reported instead of shown as the loaded one.
    """
    source = getattr(app.state.settings, "policy_file", None)
    if not source:
        setattr(app.state, POLICY_SOURCE, None)
        return
    kept = {"path": str(source), "text": None, "sha256": None, "same_as_loaded": False}
    try:
        raw = Path(source).read_bytes()[:MAX_POLICY_BYTES]
    except OSError:
        raw = None
    if raw is not None:
        kept.update(text=raw.decode("utf-8", errors="replace"), sha256=_digest(raw))
        try:
            kept["same_as_loaded"] = load_policy_text(raw.decode("utf-8")) == app.state.policy
        except (UnicodeDecodeError, PolicyFileError):
            kept["same_as_loaded"] = False
    setattr(app.state, POLICY_SOURCE, kept)


@router.get("/admin/policy", operation_id="ui.admin.policy")
def policy_page(request: Request) -> Response:
    """The policy file as loaded at start (its ${ENV} references, never resolved secrets), whether the file
    on disk still has the same bytes, and the stored grants."""
    kept = getattr(request.app.state, POLICY_SOURCE, None)
    notes = []
    if kept is not None:
        if kept["text"] is None:
            notes.append("The file could not be read again after loading, so its text cannot be shown here.")
        elif not kept["same_as_loaded"]:
            notes.append("The file changed while the server was starting: the text below may differ from the "
                         "policy in force. Restart the server to load one known version.")
        try:
            now = _digest(Path(kept["path"]).read_bytes()[:MAX_POLICY_BYTES])
        except OSError as exc:
            notes.append(f"The file cannot be read now ({exc.strerror}); the server keeps the policy it loaded.")
        else:
            if kept["sha256"] is not None and now != kept["sha256"]:
                notes.append(f"The file on disk has changed since the server loaded it (sha256 now {now}). "
                             "The server still enforces the version shown here; restart it to load the new one.")
    with tracking_of(request).engine.connect() as conn:
        stored = yaml.safe_dump({"access": admin_policy.export_access(conn)}, sort_keys=False, allow_unicode=True)
    return page(request, "admin_policy.html", title="Effective policy", section="admin", tab="policy",
                kept=kept, notes=notes, stored=stored, headers=NO_STORE)
