"""mlgate's admin REST API (what ``mlgate`` calls in remote mode): accounts, groups, grants, explain, audit.

Mounted under ``/api/2.0/mlgate``. Every operation is admin-only in the route table, so it passes the same
authorizer, audit trail and cross-process invalidation as any other change.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Depends
from starlette.requests import Request

from auth import audit_chain
from auth.grants import list_grants, put_grant, revoke_grant
from auth.principal import Principal
from auth.store import now_ms
from gateway.authz import resource_tags
from gateway.grant_selectors import UnknownResource, stored_selector
from gateway.routes import admin_policy, admin_store
from gateway.routes.users import principal_of
from gateway.workspaces import (
    check_workspace_name,
    explained_as_requested_in,
    explained_model_workspace,
    in_resource_workspace,
)
from policies.decide import api_grant_conflict
from policies.file import PolicyFileError
from policies.model import Grant, Permission, Resource, ResourceSelector, SubjectRef
from policies.routes import Lookup
from tracking.api.body import Args, request_args
from tracking.api.responses import JSONBody, ok
from tracking.errors import MlflowError, invalid_parameter, invalid_state, not_found
from tracking.scope import request_workspace
from tracking.services import tracking_of

router = APIRouter()
ARGS = Depends(request_args)


def _audit(request: Request, action: str, target: str, reason: str | None = None) -> None:
    principal: Principal = principal_of(request)
    request.app.state.identity.auditor.record(action, "success", actor=principal.name,
                                              target=target, client=getattr(request.state, "client_ip", None),
                                              reason=reason)


def _users_changed(request: Request, user_ids: list[int]) -> None:
    for user_id in user_ids:
        request.app.state.identity.user_changed(user_id)


@router.get("/users/list", operation_id="admin.users.list")
def list_accounts(request: Request, args: Args = ARGS) -> JSONBody:
    """Every account with kind, admin and disabled flags and groups; ``kind=service`` lists service accounts."""
    kind = args.str("kind", default=None)
    if kind not in (None, "user", "service"):
        raise invalid_parameter(f"Invalid kind '{kind}'. Expected 'user' or 'service'.")
    with tracking_of(request).engine.connect() as conn:
        return ok({"users": admin_store.list_accounts(conn, kind=kind)})


@router.get("/users/get", operation_id="admin.users.get")
def get_account(request: Request, args: Args = ARGS) -> JSONBody:
    """One account as the listing shows it."""
    username = args.str("username", required=True, max_length=255)
    with tracking_of(request).engine.connect() as conn:
        return ok({"user": admin_store.get_account(conn, username)})


@router.get("/groups/list", operation_id="admin.groups.list")
def list_groups(request: Request) -> JSONBody:
    """Every group with its members."""
    with tracking_of(request).engine.connect() as conn:
        return ok({"groups": admin_store.list_groups(conn)})


@router.post("/groups/create", operation_id="admin.groups.create")
def create_group(request: Request, args: Args = ARGS) -> JSONBody:
    """Create an empty group."""
    name = args.str("name", required=True, max_length=255)
    with tracking_of(request).engine.begin() as conn:
        group = admin_store.create_group(conn, name)
    _audit(request, "group.create", name)
    return ok({"group": group})


@router.post("/groups/delete", operation_id="admin.groups.delete")
def delete_group(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete a group with its memberships and grants; its members lose access at once."""
    name = args.str("name", required=True, max_length=255)
    with tracking_of(request).engine.begin() as conn:
        members = admin_store.delete_group(conn, name)
    _users_changed(request, members)
    request.app.state.policy_holder.invalidate()
    _audit(request, "group.delete", name)
    return ok({})


@router.post("/groups/add-member", operation_id="admin.groups.add_member")
def add_member(request: Request, args: Args = ARGS) -> JSONBody:
    """Add an account to a group."""
    group = args.str("group", required=True, max_length=255)
    username = args.str("username", required=True, max_length=255)
    with tracking_of(request).engine.begin() as conn:
        user_id = admin_store.add_member(conn, group, username)
    _users_changed(request, [user_id])
    _audit(request, "group.add_member", f"{group} {username}")
    return ok({})


@router.post("/groups/remove-member", operation_id="admin.groups.remove_member")
def remove_member(request: Request, args: Args = ARGS) -> JSONBody:
    """Remove an account from a group."""
    group = args.str("group", required=True, max_length=255)
    username = args.str("username", required=True, max_length=255)
    with tracking_of(request).engine.begin() as conn:
        user_id = admin_store.remove_member(conn, group, username)
    _users_changed(request, [user_id])
    _audit(request, "group.remove_member", f"{group} {username}")
    return ok({})


def _subject(conn, text: str) -> str:
    """A grant subject naming an existing account or group (404 otherwise)."""
    try:
        ref = SubjectRef.parse(text)
    except ValueError as exc:
        raise invalid_parameter(f"Invalid subject: {exc}") from None
    if ref.kind == "group":
        if not admin_store.group_exists(conn, ref.name):
            raise not_found(f"Group {ref.name} not found")
        return ref.key
    key = admin_store.subject_key(conn, ref.name)
    if key != ref.key:
        raise invalid_parameter(f"{ref.name} is a {key.partition(':')[0]} account; name it as {key}.")
    return key


def _selector(text: str) -> str:
    try:
        return ResourceSelector.parse(text).text
    except ValueError as exc:
        raise invalid_parameter(f"Invalid resource: {exc}") from None



def _stored(conn, resource: str) -> str:
    try:
        return stored_selector(conn, resource, granting=True)
    except UnknownResource as exc:
        raise MlflowError(f"{exc}; a grant on one experiment or registered model needs it to exist.",
                          "RESOURCE_DOES_NOT_EXIST") from None


@router.get("/grants/list", operation_id="admin.grants.list")
def list_stored_grants(request: Request, args: Args = ARGS) -> JSONBody:
    """Stored grants, filtered by ``subject`` (``user:``, ``service:`` or ``group:``) and ``resource``."""
    subject = args.str("subject", default=None, max_length=300)
    resource = args.str("resource", default=None, max_length=600)
    if subject is not None:
        try:
            subject = SubjectRef.parse(subject).key
        except ValueError as exc:
            raise invalid_parameter(f"Invalid subject: {exc}") from None
    with tracking_of(request).engine.connect() as conn:
        stored = None
        if resource:
            try:
                stored = stored_selector(conn, _selector(resource))
            except UnknownResource:
                return ok({"grants": []})  # no such model: no grant on it
        shown = admin_store.grants_json(conn, list_grants(conn, subject=subject, resource=stored))
    return ok({"grants": shown})


def _expiry(args: Args, now: int) -> int | None:
    """``expires_at`` (epoch ms) or ``expires_in_seconds`` from now; None when neither is given."""
    if "expires_at" in args and "expires_in_seconds" in args:
        raise invalid_parameter("Give expires_at or expires_in_seconds, not both.")
    seconds = args.int("expires_in_seconds", default=None, minimum=1, maximum=10 * 365 * 86_400)
    if seconds is not None:
        return now + seconds * 1000
    return args.int("expires_at", default=None, minimum=1)


@router.post("/grants/put", operation_id="admin.grants.put")
def put_stored_grant(request: Request, args: Args = ARGS) -> JSONBody:
    """Grant a user, service account or group a permission on an id or a name pattern (replaces the old one).

    ``expires_at`` (epoch ms) or ``expires_in_seconds`` make it stop applying then, on every process at that
    moment; ``break_glass`` marks emergency access, which must expire (within 7 days) and whose every use is
    audited.
    """
    now = now_ms()
    expires_at = _expiry(args, now)
    break_glass = bool(args.bool("break_glass", default=False))
    resource = _selector(args.str("resource", required=True, max_length=600))
    text = args.str("permission", required=True, max_length=32)
    try:
        permission = Permission.parse(text).name
    except ValueError:
        raise invalid_parameter(
            f"Invalid permission '{text}'. Expected one of NO_PERMISSIONS, READ, EDIT, MANAGE.") from None
    principal = principal_of(request)
    with tracking_of(request).engine.begin() as conn:
        subject = _subject(conn, args.str("subject", required=True, max_length=300))
        try:
            grant = Grant.from_api(0, subject, resource, permission)
        except ValueError as exc:
            raise invalid_parameter(str(exc).replace("api-grant:0: ", "")) from None
        conflict = api_grant_conflict(request.app.state.policy_holder.policy_file, grant)
        if conflict:
            raise MlflowError(f"Refused: {conflict}", "INVALID_PARAMETER_VALUE")
        try:
            row = put_grant(conn, subject, _stored(conn, resource), permission,
                            created_by=f"{principal.kind}:{principal.name}", expires_at=expires_at,
                            break_glass=break_glass, now=now)
        except ValueError as exc:
            raise invalid_parameter(str(exc)) from None
        shown = admin_store.grants_json(conn, [row])[0]
    request.app.state.policy_holder.invalidate()
    until = f", expires at {expires_at} (epoch ms)" if expires_at is not None else ""
    _audit(request, "grant.break_glass" if break_glass else "grant", f"{subject} {resource}",
           f"permission {permission}{until}")
    return ok({"grant": shown})


@router.post("/grants/revoke", operation_id="admin.grants.revoke")
def revoke_stored_grant(request: Request, args: Args = ARGS) -> JSONBody:
    """Remove the grant of a subject on a resource."""
    resource = _selector(args.str("resource", required=True, max_length=600))
    subject_text = args.str("subject", required=True, max_length=300)
    try:
        subject = SubjectRef.parse(subject_text).key
    except ValueError as exc:
        raise invalid_parameter(f"Invalid subject: {exc}") from None
    with tracking_of(request).engine.begin() as conn:
        try:
            stored = stored_selector(conn, resource)
        except UnknownResource:
            raise not_found(f"No permission of {subject} on {resource} exists") from None
        if not revoke_grant(conn, subject, stored):
            raise not_found(f"No permission of {subject} on {resource} exists")
    request.app.state.policy_holder.invalidate()
    _audit(request, "revoke", f"{subject} {resource}", "revoked")
    return ok({})


_RESOURCE_FIELDS = (("experiment_id", Lookup.EXPERIMENT_ID), ("experiment_name", Lookup.EXPERIMENT_NAME),
                    ("model", Lookup.MODEL_NAME))


@router.get("/perms/explain", operation_id="admin.perms.explain")
def explain(request: Request, args: Args = ARGS) -> JSONBody:
    """Why an account may or may not do READ/EDIT/MANAGE on one experiment or registered model."""
    username = args.str("username", required=True, max_length=255)
    action = args.str("action", required=True, max_length=32)
    given = [(f, lookup, args.str(f, max_length=500)) for f, lookup in _RESOURCE_FIELDS if f in args]
    if len(given) != 1 or not given[0][2]:
        raise invalid_parameter("Name exactly one of experiment_id, experiment_name or model.")
    field, lookup, value = given[0]
    alias = args.str("alias", default=None, max_length=256)
    asked = args.str("workspace", default=None, max_length=63)
    if asked is not None:
        check_workspace_name(asked)
    policy = request.app.state.policy_holder.current()
    with tracking_of(request).engine.connect() as conn:
        subject = admin_store.account_subject(conn, username)
        # An id names one resource wherever it is; an experiment name means the one of the request's workspace,
        # a model name the one of the workspace asked about (else the only one holding it).
        named_in = request_workspace(request) if lookup is Lookup.EXPERIMENT_NAME else None
        if lookup is Lookup.MODEL_NAME:
            named_in = explained_model_workspace(conn, value, asked)
        resource = request.app.state.authorizer.resolver.resolve(conn, lookup, value, None, named_in)
        where: dict = {}
        if isinstance(resource, Resource):
            # Decided as in the resource's workspace: with the roles the account holds there.
            subject, where = in_resource_workspace(conn, subject, resource)
            # Conditions see the resource's tags and the alias asked about, as for a request.
            resource = replace(resource, tags=resource_tags(conn, resource) if policy.needs_tags else None,
                               alias=alias)
    if resource is None:
        raise not_found(f"No resource with {field}={value} exists")
    explained = explained_as_requested_in({**admin_store.explain(policy, subject, resource, action), **where},
                                          asked, admin=policy.is_admin(subject))
    if explained is None:
        # As a request naming that workspace: another workspace's resource is missing there.
        raise not_found(f"No resource with {field}={value} exists in workspace '{asked}'")
    return ok(explained)


@router.get("/audit/list", operation_id="admin.audit.list")
def list_audit(request: Request, args: Args = ARGS) -> JSONBody:
    """Audit records filtered by actor, action, outcome, workspace and time (epoch ms); ``after_id`` pages
    forward."""
    filters = {
        "actor": args.str("actor", default=None, max_length=300),
        "action": args.str("action", default=None, max_length=64),
        "outcome": args.str("outcome", default=None, max_length=16),
        "workspace": args.str("workspace", default=None, max_length=63),
        "since": args.int("since", default=None, minimum=0),
        "until": args.int("until", default=None, minimum=0),
        "after_id": args.int("after_id", default=None, minimum=0),
    }
    limit = args.int("limit", default=100, minimum=1, maximum=admin_store.MAX_AUDIT_PAGE)
    with tracking_of(request).engine.connect() as conn:
        records = admin_store.audit_records(conn, limit=limit, **filters)
    return ok({"records": records})


@router.get("/audit/verify", operation_id="admin.audit.verify")
def verify_audit(request: Request) -> JSONBody:
    """Recompute the audit log's hash chain: ``ok``, or the first record that was edited, deleted or moved.

    With a checkpoint signing key configured, the stored checkpoints are checked against its public key."""
    keeper = request.app.state.audit.keeper
    verifier = keeper.plan.signer.verifier() if keeper is not None else None
    with tracking_of(request).engine.connect() as conn:
        result = audit_chain.verify(conn, verifier)
    return ok({"verification": result.to_json()})


def _keeper(request: Request):
    keeper = request.app.state.audit.keeper
    if keeper is None:
        raise invalid_state("Audit checkpoints are off: set audit.checkpoints.signing_key_file in the server's "
                            "policy file")
    return keeper


@router.post("/audit/checkpoint", operation_id="admin.audit.checkpoint")
def sign_checkpoint(request: Request) -> JSONBody:
    """Verify the records since the last checkpoint and sign the chain's head now (``checkpoint``: null when
    the log is empty)."""
    try:
        signed = _keeper(request).checkpoint("manual")
    except audit_chain.ChainBroken as exc:
        raise invalid_state(f"Not signed: the audit chain does not verify ({exc}); run `mlgate audit verify`") \
            from None
    if signed is not None:
        _audit(request, "audit.checkpoint", f"record {signed.seq}", f"signed by key {signed.key_id}")
    return ok({"checkpoint": signed.to_json() if signed is not None else None})


@router.get("/audit/checkpoints", operation_id="admin.audit.checkpoints")
def list_checkpoints(request: Request, args: Args = ARGS) -> JSONBody:
    """Stored signed checkpoints, oldest first; ``after_id`` pages forward by their ``id``."""
    after = args.int("after_id", default=0, minimum=0)
    limit = args.int("limit", default=1000, minimum=1, maximum=admin_store.MAX_AUDIT_PAGE)
    with tracking_of(request).engine.connect() as conn:
        rows = audit_chain.stored_checkpoint_rows(conn, after, limit)
    return ok({"checkpoints": rows})


@router.post("/audit/prune", operation_id="admin.audit.prune")
def prune_audit(request: Request, args: Args = ARGS) -> JSONBody:
    """Delete records older than ``older_than_days`` (default: the configured retention), after verifying
    them and signing the new start; the prune is itself an audit record.

    Never more than the policy file allows: ``older_than_days`` below ``audit.retention_days`` is refused, and
    without a retention (keep everything) nothing is pruned over the API, so a stolen administrator credential
    cannot erase the log's history (a shorter retention: the policy file, or ``mlgate audit prune --db`` on
    the host with the signing key)."""
    keeper = _keeper(request)
    retention = keeper.plan.retention_days
    if retention is None:
        raise invalid_parameter("No audit.retention_days is configured, so the audit log keeps everything: set it "
                                "in the policy file, or prune on the database host (mlgate audit prune --db).")
    days = args.int("older_than_days", default=retention, minimum=1, maximum=36_500)
    if days < retention:
        raise invalid_parameter(f"older_than_days ({days}) is shorter than audit.retention_days ({retention}); "
                                "over the API records are kept at least that long (change the policy file, or "
                                "prune on the database host with mlgate audit prune --db).")
    before = now_ms() - days * 86_400_000
    try:
        pruned = keeper.prune(actor=principal_of(request).name, before=before,
                              reason=f"pruned on request: older than {days} day(s)")
    except audit_chain.ChainBroken as exc:
        raise invalid_state(f"Nothing pruned: the audit chain does not verify ({exc})") from None
    if pruned is None:
        return ok({"pruned": 0})
    return ok({"pruned": pruned.deleted, "first_id": pruned.first_id, "last_id": pruned.last_id,
               "anchor": pruned.anchor.to_json()})


@router.get("/policy/export", operation_id="admin.policy.export")
def export_policy(request: Request, args: Args = ARGS) -> JSONBody:
    """Stored groups and API grants as a policy file's ``access`` section (``owner_grants``: creators' too);
    ``names``: the name of each experiment a grant names by id."""
    owner_grants = bool(args.bool("owner_grants", default=False))
    with tracking_of(request).engine.connect() as conn:
        access = admin_policy.export_access(conn, owner_grants=owner_grants)
        document = {"access": access, "names": admin_policy.export_names(conn, access)}
        if (workspaces := admin_policy.export_workspaces(conn)):
            document["workspaces"] = workspaces
        return ok(document)


def _refused(problems: list[str]) -> MlflowError:
    return invalid_parameter("invalid policy, nothing changed:\n" + "\n".join(f"  - {p}" for p in problems))


@router.post("/policy/apply", operation_id="admin.policy.apply")
def apply_policy(request: Request, args: Args = ARGS) -> JSONBody:
    """Make stored groups and API grants equal to an ``access`` section, in one transaction (``dry_run``: plan;
    ``owner_grants``: creators' grants too, so ones the section leaves out are removed)."""
    access = args.obj("access", required=True)
    workspaces = args.obj("workspaces")
    templates = args.obj_list("workspace_templates")
    dry_run = bool(args.bool("dry_run", default=False))
    owner_grants = bool(args.bool("owner_grants", default=False))
    if (workspaces is not None or templates) and not request.app.state.authorizer.workspaces.enabled:
        raise _refused(["workspaces: this server does not serve workspaces (start it with --enable-workspaces)"])
    principal = principal_of(request)
    policy_file = request.app.state.policy_holder.policy_file
    with tracking_of(request).engine.begin() as conn:
        try:
            changes = admin_policy.plan(conn, access, owner_grants=owner_grants, workspaces=workspaces,
                                        templates=templates)
        except PolicyFileError as exc:
            raise _refused(exc.problems) from None
        conflicts = [f"{c.subject} {c.resource}: {why}" for c in changes
                     if c.kind == "grant" and c.op != "remove"
                     and (why := api_grant_conflict(policy_file, Grant.from_api(0, c.subject, c.resource,
                                                                                c.permission)))]
        if conflicts:
            raise _refused(conflicts)
        touched = [] if dry_run else admin_policy.apply(conn, changes, f"{principal.kind}:{principal.name}")
    if not dry_run and changes:
        _users_changed(request, touched)
        request.app.state.policy_holder.invalidate()
        _audit(request, "policy.apply", f"{len(changes)} change(s)")
    return ok({"changes": [c.to_json() for c in changes], "applied": not dry_run})
