"""The route table: what every operation id requires, and where the gateway finds the resource.

Finding a resource is data here and I/O in the gateway: a :class:`Locator` names the request field
and the :class:`Lookup` that turns its value into a :class:`~policies.model.Resource` (run id ->
run -> experiment). An operation id missing from the table is unmapped, and the gateway denies it.

Field paths: ``a.b`` descends into JSON objects, ``x[]`` visits every element of a list. With
``many=True`` every value found must pass (and more than ``max_values`` are refused before any
lookup); with ``required=False`` a missing field skips the check (an optional cross-resource
reference), while a missing required field denies the request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from policies.model import Permission, ResourceKind


class Access(StrEnum):
    """The kind of check an operation needs."""

    PUBLIC = "public"  # no login (health, version, login page)
    AUTHENTICATED = "authenticated"  # any signed-in principal
    ADMIN = "admin"  # administrators only
    SELF_OR_ADMIN = "self_or_admin"  # the named user themself, or an administrator
    RESOURCE = "resource"  # a permission on one resolved resource
    CREATE_EXPERIMENT = "create_experiment"  # checked against access.create.experiments
    CREATE_MODEL = "create_model"  # checked against access.create.models
    SEARCH = "search"  # any signed-in principal; results are filtered by a visibility scope
    # The SCIM provisioning token (auth.scim.token) and nothing else: no user's credential is even looked at
    # under /scim/v2, and the token authenticates nowhere else.
    SCIM = "scim"


class Source(StrEnum):
    """Where a locator's field is read from."""

    ARGS = "args"  # the strictly parsed request arguments: query string (GET/DELETE) or JSON body
    PATH = "path"  # a path parameter of the route
    HEADER = "header"  # a request header (lower-case name)


class Lookup(StrEnum):
    """How the gateway turns a field's value into a resource."""

    EXPERIMENT_ID = "experiment_id"  # the value is an experiment id
    EXPERIMENT_NAME = "experiment_name"  # the experiment with this name
    RUN = "run"  # run id -> the run's experiment
    # '<experiment_id>/...' under the artifact root -> that experiment; parse it with tracking's
    # artifact_owner() so the check and the handler read the path the same way
    ARTIFACT_PATH = "artifact_path"
    TRACE = "trace"  # trace (request) id -> the trace's experiment
    LOGGED_MODEL = "logged_model"  # logged model id -> its experiment
    MODEL_NAME = "model_name"  # the registered model with this name
    # a model version source (tracking's registry_source parses it): models:/<name>/... -> that
    # registered model; runs:/, models:/<id> and mlflow-artifacts:/ sources are tied to run_id or
    # model_id by tracking's validation and resolve to their experiment
    SOURCE_URI = "source_uri"
    USERNAME = "username"  # a user account, for self-service checks
    NEW_NAME = "new_name"  # a name being created or renamed to, for create rules


@dataclass(frozen=True)
class Locator:
    """Which request field names the resource, and how to resolve it."""

    source: Source
    fields: tuple[str, ...]  # alternatives: the first one present is used (run_id, then run_uuid)
    lookup: Lookup
    required: bool = True
    many: bool = False
    max_values: int | None = None  # a many-valued field naming more is refused before any lookup (None: locate's cap)


@dataclass(frozen=True)
class Requirement:
    """What one operation needs; ``also`` lists further checks that must all pass (cross-resource).

    ``scoped``: the handler lists resources (a search, a page listing runs, traces or what the caller may
    access), so the gateway gives it the caller's visibility scope. Without one, tracking shows nothing.
    """

    access: Access
    permission: Permission = Permission.NO_PERMISSIONS
    resource_kind: ResourceKind | None = ResourceKind.NONE  # None: whatever kind the lookup yields
    locator: Locator | None = None
    also: tuple[Requirement, ...] = ()
    scoped: bool = False
    # The request field naming a model alias, for conditions on aliases (access.conditions).
    alias_field: str | None = None

    def checks(self) -> tuple[Requirement, ...]:
        """This requirement followed by its cross-resource ones, in the order to check them."""
        return (self, *self.also)


R, E, M = Permission.READ, Permission.EDIT, Permission.MANAGE
_EXP, _MODEL = ResourceKind.EXPERIMENT, ResourceKind.REGISTERED_MODEL

PUBLIC = Requirement(Access.PUBLIC)
SCIM = Requirement(Access.SCIM)


def _signed_in(permission: Permission) -> Requirement:
    # The permission only matters for read-only tokens: they may read their own account, not change it.
    return Requirement(Access.AUTHENTICATED, permission)


def _admin(permission: Permission) -> Requirement:
    return Requirement(Access.ADMIN, permission)


def _self(permission: Permission, source: Source = Source.ARGS) -> Requirement:
    return Requirement(Access.SELF_OR_ADMIN, permission, ResourceKind.USER,
                       Locator(source, ("username",), Lookup.USERNAME))


def _search(kind: ResourceKind) -> Requirement:
    return Requirement(Access.SEARCH, R, kind, scoped=True)


def _listing(requirement: Requirement) -> Requirement:
    """``requirement``, for a handler that also lists resources inside what it checked (scope given)."""
    return replace(requirement, scoped=True)


def _on(permission: Permission, kind: ResourceKind | None, source: Source, fields: tuple[str, ...], lookup: Lookup,
        *, required: bool = True, many: bool = False, max_values: int | None = None,
        also: tuple[Requirement, ...] = ()) -> Requirement:
    return Requirement(Access.RESOURCE, permission, kind, Locator(source, fields, lookup, required, many, max_values),
                       also)


def _experiment(permission: Permission, field: str = "experiment_id", **kw) -> Requirement:
    return _on(permission, _EXP, Source.ARGS, (field,), Lookup.EXPERIMENT_ID, **kw)


def _run(permission: Permission, fields: tuple[str, ...] = ("run_id", "run_uuid"), **kw) -> Requirement:
    return _on(permission, _EXP, Source.ARGS, fields, Lookup.RUN, **kw)


def _artifact(permission: Permission, source: Source = Source.PATH) -> Requirement:
    field = "artifact_path" if source is Source.PATH else "path"
    return _on(permission, _EXP, source, (field,), Lookup.ARTIFACT_PATH)


def _logged_model(permission: Permission, source: Source = Source.PATH, field: str = "model_id", **kw) -> Requirement:
    return _on(permission, _EXP, source, (field,), Lookup.LOGGED_MODEL, **kw)


def _trace(permission: Permission, source: Source, *fields: str, **kw) -> Requirement:
    return _on(permission, _EXP, source, fields, Lookup.TRACE, **kw)


def _model(permission: Permission, field: str = "name", **kw) -> Requirement:
    return _on(permission, _MODEL, Source.ARGS, (field,), Lookup.MODEL_NAME, **kw)


def _create(access: Access, field: str = "name", *, required: bool = True) -> Requirement:
    kind = _EXP if access is Access.CREATE_EXPERIMENT else _MODEL
    return Requirement(access, E, kind, Locator(Source.ARGS, (field,), Lookup.NEW_NAME, required))


def _models_edited(list_field: str) -> tuple[Requirement, ...]:
    # MLflow: logging for a logged model needs EDIT on the logged model's experiment too.
    return (_logged_model(E, Source.ARGS, f"{list_field}[].model_id", required=False, many=True),)


def _assessment_body_trace() -> Requirement:
    return _trace(E, Source.ARGS, "assessment.trace_id", required=False)


_TABLE: dict[str, Requirement] = {
    # Operations and login: reachable without credentials.
    "ops.health": PUBLIC,
    "ops.ready": PUBLIC,  # readiness probe: names failed checks only, never hosts or errors
    "ops.version": PUBLIC,
    # Prometheus metrics: administrators, or the scrape token (answered before authentication).
    "ops.metrics": _admin(R),
    "server.info": PUBLIC,
    # MLflow 3.18's skill registry is not served (tracking/api/skills.py answers 501): signed-in callers only.
    **{f"skills.not_served.{m}{p}": _signed_in(R) for m in ("get", "post", "patch", "delete") for p in ("", "_path")},
    "server.openapi": _signed_in(R),  # the API description: any signed-in principal
    "auth.login_page": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,  # the handler checks the session and its CSRF field itself
    # Single sign-on: the callback checks state, code and ID token; logout checks the session and CSRF field.
    "auth.sso_login": PUBLIC,
    "auth.sso_callback": PUBLIC,
    "auth.sso_logout_page": PUBLIC,
    "auth.sso_logout": PUBLIC,
    # SCIM 2.0 provisioning (RFC 7644): the provisioning token only, checked by the authorizer.
    "scim.service_provider_config": SCIM,
    "scim.resource_types.list": SCIM,
    "scim.resource_types.get": SCIM,
    "scim.schemas.list": SCIM,
    "scim.schemas.get": SCIM,
    "scim.users.list": SCIM,
    "scim.users.create": SCIM,
    "scim.users.get": SCIM,
    "scim.users.replace": SCIM,
    "scim.users.patch": SCIM,
    "scim.users.delete": SCIM,
    "scim.groups.list": SCIM,
    "scim.groups.create": SCIM,
    "scim.groups.get": SCIM,
    "scim.groups.replace": SCIM,
    "scim.groups.patch": SCIM,
    "scim.groups.delete": SCIM,
    # Experiments. Renaming needs MANAGE and the create rule for the new name: a rename could
    # otherwise move an experiment under a name pattern that grants its editor more.
    "experiments.create": _create(Access.CREATE_EXPERIMENT),
    "experiments.get": _experiment(R),
    "experiments.get_by_name": _on(R, _EXP, Source.ARGS, ("experiment_name",), Lookup.EXPERIMENT_NAME),
    "experiments.update": _experiment(M, also=(_create(Access.CREATE_EXPERIMENT, "new_name"),)),
    "experiments.delete": _experiment(M),
    "experiments.restore": _experiment(M),
    "experiments.set_tag": _experiment(E),
    "experiments.delete_tag": _experiment(E),
    "experiments.search": _search(_EXP),
    "experiments.search_via_get": _search(_EXP),
    # Runs, metrics, params, inputs and outputs inherit from their experiment.
    "runs.create": _experiment(E),
    "runs.get": _run(R),
    "runs.update": _run(E),
    "runs.delete": _run(M),
    "runs.restore": _run(M),
    "runs.set_tag": _run(E),
    "runs.delete_tag": _run(E),
    "runs.log_metric": _run(E, also=(_logged_model(E, Source.ARGS, required=False),)),
    "runs.log_param": _run(E),
    "runs.log_batch": _run(E, also=_models_edited("metrics")),
    "runs.log_inputs": _run(E, also=_models_edited("models")),
    "runs.log_outputs": _run(E, also=_models_edited("models")),
    "runs.search": _search(_EXP),
    "runs.search_via_get": _search(_EXP),
    "metrics.get_history": _run(R),
    # The dataset summaries of experiments' runs (MLflow's UI's dataset filter): READ on every one named.
    "datasets.search_summaries": _experiment(R, "experiment_ids", many=True, max_values=20),
    # GenAI evaluation datasets: none are stored; a search (nothing to find).
    "evaluation_datasets.search": _search(_EXP),
    # MLflow's web UI's GraphQL queries (experiment, run, run search, metric histories): a search, so the
    # request carries the visibility scope, and every object a resolver reads is checked against it.
    "graphql.query": _search(_EXP),
    "metrics.get_history_bulk_interval": _run(R, ("run_ids",), many=True),
    # Artifacts: the proxied path starts with the owning experiment's id.
    "artifacts.list": _artifact(R, Source.ARGS),
    "artifacts.get": _artifact(R),
    "artifacts.put": _artifact(E),
    "artifacts.delete": _artifact(M),
    "artifacts.mpu_create": _artifact(E),
    "artifacts.mpu_complete": _artifact(E),
    "artifacts.mpu_abort": _artifact(E),
    "artifacts.list_for_run": _run(R),
    "artifacts.get_for_run": _run(R),
    "model_versions.get_artifact": _model(R),
    # Registered models, their versions, aliases and tags inherit from the model.
    "registered_models.create": _create(Access.CREATE_MODEL),
    "registered_models.get": _model(R),
    "registered_models.rename": _model(M, also=(_create(Access.CREATE_MODEL, "new_name"),)),
    "registered_models.update": _model(E),
    "registered_models.delete": _model(M),
    "registered_models.search": _search(_MODEL),
    "registered_models.search_via_post": _search(_MODEL),
    "registered_models.set_tag": _model(E),
    "registered_models.delete_tag": _model(E),
    "registered_models.get_latest_versions": _model(R),
    "registered_models.get_latest_versions_via_get": _model(R),
    "registered_models.set_alias": replace(_model(E), alias_field="alias"),
    "registered_models.delete_alias": replace(_model(M), alias_field="alias"),
    "registered_models.get_version_by_alias": replace(_model(R), alias_field="alias"),
    # A version copies its source's artifacts: the caller must be able to read that source.
    "model_versions.create": _model(E, also=(
        _run(R, ("run_id",), required=False),
        _logged_model(R, Source.ARGS, required=False),
        _on(R, None, Source.ARGS, ("source",), Lookup.SOURCE_URI, required=False),
    )),
    "model_versions.get": _model(R),
    "model_versions.update": _model(E),
    "model_versions.delete": _model(M),
    "model_versions.search": _search(_MODEL),
    "model_versions.search_via_post": _search(_MODEL),
    "model_versions.set_tag": _model(E),
    "model_versions.delete_tag": _model(E),
    "model_versions.transition_stage": _model(E),
    "model_versions.get_download_uri": _model(R),
    # Logged models inherit from their experiment.
    "logged_models.create": _experiment(E, also=(_run(R, ("source_run_id",), required=False),)),
    "logged_models.get": _logged_model(R),
    "logged_models.finalize": _logged_model(E),
    "logged_models.delete": _logged_model(M),
    "logged_models.search": _search(_EXP),
    "logged_models.set_tags": _logged_model(E),
    "logged_models.delete_tag": _logged_model(E),
    "logged_models.log_params": _logged_model(E),
    "logged_models.list_artifacts": _logged_model(R),
    "logged_models.get_artifact": _logged_model(R),
    # Traces and assessments inherit from the trace's experiment.
    "traces.start": _experiment(E, "trace.trace_info.trace_location.mlflow_experiment.experiment_id"),
    "traces.get_info": _trace(R, Source.PATH, "trace_id"),
    "traces.get": _trace(R, Source.ARGS, "trace_id"),
    # Every id is checked, and the handler leaves out what the scope hides (an id deleted and reused since).
    "traces.batch_get": _listing(_trace(R, Source.ARGS, "trace_ids", many=True)),
    "traces.search": _search(_EXP),
    "traces.set_tag": _trace(E, Source.PATH, "trace_id", "request_id"),
    "traces.delete_tag": _trace(E, Source.PATH, "trace_id", "request_id"),
    "traces.delete": _experiment(M),
    # Linking changes what the run shows and what the traces belong to: EDIT on both sides (every trace).
    "traces.link_to_run": _run(E, ("run_id",), also=(_trace(E, Source.ARGS, "trace_ids", many=True,
                                                            max_values=100),)),
    # MLflow's UI reads a trace's spans here (its traces.json form), with the trace named by request_id.
    "traces.get_artifact": _trace(R, Source.ARGS, "request_id"),
    "traces.get_artifact_v3": _trace(R, Source.ARGS, "request_id"),
    "traces.metrics": _experiment(R, "experiment_ids", many=True, max_values=20),
    # The trace id is in the path and again in the body: both must pass, so they cannot disagree.
    "assessments.create": _trace(E, Source.PATH, "trace_id", also=(_assessment_body_trace(),)),
    "assessments.get": _trace(R, Source.PATH, "trace_id"),
    "assessments.update": _trace(E, Source.PATH, "trace_id", also=(_assessment_body_trace(),)),
    "assessments.delete": _trace(M, Source.PATH, "trace_id"),
    "otlp.ingest": _on(E, _EXP, Source.HEADER, ("x-mlflow-experiment-id",), Lookup.EXPERIMENT_ID),
    # Accounts and tokens.
    "users.create": _admin(M),
    "users.get": _self(R),
    "users.update_password": _self(M),
    "users.update_admin": _admin(M),
    "users.delete": _admin(M),
    "users.current": _signed_in(R),
    # Creating or revoking a token is a write: a read-only token must not mint a full one.
    "tokens.create": _signed_in(M),
    "tokens.list": _signed_in(R),
    "tokens.revoke": _signed_in(M),
    "users.list": _admin(R),
    "users.update_disabled": _admin(M),
    # Permission management (MLflow-compatible). The 2.x routes name one resource: MANAGE on it.
    # The 3.x routes name it by (resource_type, resource_id); their handler asks decide() for MANAGE.
    "permissions.experiments.create": _experiment(M),
    "permissions.experiments.get": _experiment(M),
    "permissions.experiments.update": _experiment(M),
    "permissions.experiments.update_via_post": _experiment(M),
    "permissions.experiments.delete": _experiment(M),
    "permissions.experiments.delete_via_post": _experiment(M),
    "permissions.registered_models.create": _model(M),
    "permissions.registered_models.get": _model(M),
    "permissions.registered_models.update": _model(M),
    "permissions.registered_models.update_via_post": _model(M),
    "permissions.registered_models.delete": _model(M),
    "permissions.registered_models.delete_via_post": _model(M),
    "permissions.users.grant": _signed_in(M),
    "permissions.users.revoke": _signed_in(M),
    "permissions.users.get": _signed_in(R),
    "permissions.users.list": _signed_in(R),
    # MLflow 3 workspaces: listing and reading show only the caller's workspaces (the handler filters by
    # membership); creating, changing and deleting one is for server administrators.
    "workspaces.list": _signed_in(R),
    "workspaces.get": _signed_in(R),
    "workspaces.create": _admin(M),
    "workspaces.update": _admin(M),
    "workspaces.delete": _admin(M),
    # MLflow 3 roles: the handler decides per role (server administrators, or the administrators of the
    # role's workspace); a role the caller may not see is missing.
    "roles.create": _signed_in(M),
    "roles.get": _signed_in(R),
    "roles.list": _signed_in(R),
    "roles.update": _signed_in(M),
    "roles.delete": _signed_in(M),
    "roles.permissions.add": _signed_in(M),
    "roles.permissions.remove": _signed_in(M),
    "roles.permissions.update": _signed_in(M),
    "roles.permissions.list": _signed_in(R),
    "roles.assign": _signed_in(M),
    "roles.unassign": _signed_in(M),
    "roles.users.list": _signed_in(R),
    "roles.users.roles": _signed_in(R),
    "permissions.users.current": _signed_in(R),  # MLflow's UI: the caller's own (role) permission rows
    # mlgate's admin API (the CLI's remote mode): administrators only.
    "admin.users.list": _admin(R),
    "admin.users.get": _admin(R),
    "admin.groups.list": _admin(R),
    "admin.groups.create": _admin(M),
    "admin.groups.delete": _admin(M),
    "admin.groups.add_member": _admin(M),
    "admin.groups.remove_member": _admin(M),
    "admin.grants.list": _admin(R),
    "admin.grants.put": _admin(M),
    "admin.grants.revoke": _admin(M),
    "admin.perms.explain": _admin(R),
    "admin.audit.list": _admin(R),
    "admin.audit.verify": _admin(R),
    "admin.audit.checkpoints": _admin(R),
    "admin.audit.checkpoint": _admin(M),
    "admin.audit.prune": _admin(M),
    "admin.policy.export": _admin(R),
    "admin.policy.apply": _admin(M),
    # The web UI: the same checks as the API calls each page stands for (list pages are searches).
    "ui.static": PUBLIC,
    "ui.experiments": _search(_EXP),
    "ui.experiments_list": _search(_EXP),
    "ui.experiment": _listing(_on(R, _EXP, Source.PATH, ("experiment_id",), Lookup.EXPERIMENT_ID)),
    "ui.run": _listing(_on(R, _EXP, Source.PATH, ("run_id",), Lookup.RUN)),  # lists child runs
    "ui.artifact_preview": _on(R, _EXP, Source.PATH, ("run_id",), Lookup.RUN),
    "ui.artifact_image": _on(R, _EXP, Source.PATH, ("run_id",), Lookup.RUN),
    "ui.artifact_download": _run(R),  # the API's artifacts.get_for_run, from mlgate's pages
    # every run named, and at most the 10 the page compares: more are refused before any lookup
    "ui.compare": _on(R, _EXP, Source.ARGS, ("runs",), Lookup.RUN, many=True, max_values=10),
    "ui.traces": _listing(_on(R, _EXP, Source.PATH, ("experiment_id",), Lookup.EXPERIMENT_ID)),
    "ui.trace": _trace(R, Source.PATH, "trace_id"),
    "ui.logged_model": _logged_model(R),
    "ui.models": _search(_MODEL),
    "ui.prompts": _search(_MODEL),
    "ui.model": _model(R),
    # My account: what I may see is a search (scoped); token and password forms are writes that
    # re-render the page (what I may see included), so they are given the scope too.
    "ui.account": _search(_EXP),
    "ui.account.token_create": _listing(_signed_in(M)),
    "ui.account.token_revoke": _listing(_signed_in(M)),
    "ui.account.password": _listing(_signed_in(M)),
    "ui.account.workspace": _signed_in(R),  # one's own workspaces only (gateway/ui/workspaces.py)
    # A workspace's administrators (roles API rules, gateway/routes/workspaces.py); anyone else: 404, audited.
    "ui.workspace_admin.list": _signed_in(R),
    "ui.workspace_admin.page": _signed_in(R),
    "ui.workspace_admin.role_create": _signed_in(M),
    "ui.workspace_admin.role_delete": _signed_in(M),
    "ui.workspace_admin.permission_add": _signed_in(M),
    "ui.workspace_admin.permission_remove": _signed_in(M),
    "ui.workspace_admin.assign": _signed_in(M),
    "ui.workspace_admin.unassign": _signed_in(M),
    # Admin pages: the admin API's checks (forms change state: MANAGE, so a read-only token cannot).
    "ui.admin.users": _admin(R),
    "ui.admin.user_create": _admin(M),
    "ui.admin.user_update": _admin(M),
    "ui.admin.groups": _admin(R),
    "ui.admin.group_create": _admin(M),
    "ui.admin.group_delete": _admin(M),
    "ui.admin.group_member": _admin(M),
    "ui.admin.grants": _admin(R),
    "ui.admin.grant_put": _admin(M),
    "ui.admin.grant_revoke": _admin(M),
    "ui.admin.audit": _admin(R),
    "ui.admin.policy": _admin(R),
    # MLflow's own web UI (the mlflow-ui extra): its page needs a signed-in person (anonymous: the sign-in
    # page); its bundle's files are public code. Its API calls are the routes above.
    "mlflow_ui.index": _signed_in(R),
    "mlflow_ui.static": PUBLIC,
    # Features mlgate does not serve, answered "off" so MLflow's UI hides them: nothing to protect, but
    # only for signed-in people (the UI's own calls). Telemetry records are dropped unread.
    "features.assistant_config": _signed_in(R),
    "features.assistant_providers": _signed_in(R),
    "features.ui_telemetry_config": _signed_in(R),
    "features.ui_telemetry_records": _signed_in(R),
    "features.gateway_proxy": _signed_in(R),
    "features.gateway_proxy_via_post": _signed_in(R),
}

ROUTE_TABLE: MappingProxyType[str, Requirement] = MappingProxyType(_TABLE)
OPERATION_IDS: tuple[str, ...] = tuple(sorted(_TABLE))


def resource_requirement(permission: Permission, kind: ResourceKind) -> Requirement:
    """A bare check of ``permission`` on one resource of ``kind`` (``mlgate perms explain --action``)."""
    return Requirement(Access.RESOURCE, permission, kind)


def create_requirement(kind: ResourceKind) -> Requirement:
    """A bare check of the create rules for ``kind``."""
    access = Access.CREATE_EXPERIMENT if kind is ResourceKind.EXPERIMENT else Access.CREATE_MODEL
    return Requirement(access, E, kind)


def requirement_for(operation_id: str) -> Requirement | None:
    """The requirement of ``operation_id``, or None when it is unmapped (the gateway then denies)."""
    return ROUTE_TABLE.get(operation_id)
