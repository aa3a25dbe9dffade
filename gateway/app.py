"""The ASGI application factory: ``create_app(settings)`` composes every layer; nothing happens at import."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType

from fastapi import Depends, FastAPI
from itsdangerous import URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from auth.accounts import Accounts
from auth.audit_setup import AuditPlan, attach_audit, plan_audit
from auth.scim.provisioning import ScimProvisioning
from auth.scim.token import ScimToken
from gateway import MLFLOW_COMPATIBLE_VERSION, __version__
from gateway.authn import AuthenticationMiddleware
from gateway.authz import PolicyHolder, ResourceResolver
from gateway.context import SERVICES_STATE_KEY, Services
from gateway.errors import install_error_handlers
from gateway.identity import auth_config_of, build_identity, identity_problems, session_secret
from gateway.lifecycle import ResourceLifecycle
from gateway.middleware import NetworkPlan, as_network_config, install_network_middleware, plan_network
from gateway.openapi import install_openapi
from gateway.ops.access import RequestObservationMiddleware
from gateway.ops.decisions import ObservedAuthorizer
from gateway.ops.metrics import AuditCounter, Metrics
from gateway.ops.readiness import Readiness
from gateway.ops.routes import router as ops_router
from gateway.ops.scrape import ScrapeTokenMiddleware
from gateway.routes import admin as admin_routes
from gateway.routes import login as login_routes
from gateway.routes import permissions as permission_routes
from gateway.routes import schema as schema_routes
from gateway.routes import scim as scim_routes
from gateway.routes import sso as sso_routes
from gateway.routes import users as user_routes
from gateway.routes import workspaces as workspace_routes
from gateway.routes.sso import SSO_STATE_SALT
from gateway.settings import Settings, SettingsError, settings_from_environment
from gateway.ui import mlflow_ui as mlflow_ui_routes
from gateway.ui import routes as ui_routes
from gateway.ui.mlflow_ui import MlflowUiBuild, choose_build
from gateway.workspaces import WorkspaceDirectory
from policies.file import PolicyFile, PolicyFileError, load_policy_file
from policies.file.auth import AuthConfig
from tracking.api import tracking_mounts
from tracking.artifacts.storage import destination_problems
from tracking.services import DEFAULT_MAX_ARTIFACT_BYTES, create_tracking


def load_policy(settings: Settings) -> PolicyFile:
    """The policy file named by the settings, or the built-in defaults."""
    if settings.policy_file:
        return load_policy_file(settings.policy_file)
    return PolicyFile()


@dataclass(frozen=True)
class StartupPlan:
    """Everything ``create_app`` validated before creating anything."""

    policy: PolicyFile
    auth_config: AuthConfig
    network: NetworkPlan
    mlflow_ui: MlflowUiBuild | None
    audit: AuditPlan


def check_startup(settings: Settings) -> StartupPlan:
    """Validate settings, policy file, auth section and backends, network options, artifact destination and
    web UI in one round; raises :class:`SettingsError` listing every problem. Creates nothing (no engine,
    no artifact directory, no secret file), so a misconfigured start leaves no trace behind."""
    problems = settings.validate()
    policy: PolicyFile | None = None
    try:
        policy = load_policy(settings)
    except PolicyFileError as exc:
        problems.extend(f"--policy {settings.policy_file}: {p}" for p in exc.problems)
    if policy is not None and (policy.workspaces is not None or policy.workspace_templates):
        # Workspaces and roles are stored (workspace administrators change them at run time): a server reading
        # them from its file would silently disagree with what it stores.
        problems.append(f"--policy {settings.policy_file}: workspaces and workspace_templates are stored on the "
                        "server: apply them with `mlgate policy apply FILE` and leave them out of --policy")
    problems.extend(identity_problems(settings, policy))  # secret key, auth section, auth backends
    audit_plan, audit_problems = plan_audit(policy.audit) if policy is not None else (None, [])
    problems.extend(f"--policy {settings.policy_file}: {p}" for p in audit_problems)
    network, network_problems = plan_network(settings, policy.network if policy is not None else None)
    if policy is None:
        # The file's network section could not be read: only the command line's own entries can be judged.
        network_problems = [p for p in network_problems if p.startswith("--") and " / network." not in p]
    problems.extend(network_problems)
    problems.extend(destination_problems(settings.artifacts_destination))
    mlflow_ui, ui_problems = choose_build(settings.web_ui)
    problems.extend(ui_problems)
    if problems:
        raise SettingsError(problems)
    if mlflow_ui is not None:
        mlflow_ui = mlflow_ui.framed(network.config.headers.frame_ancestors)
    return StartupPlan(policy, auth_config_of(policy), network, mlflow_ui, audit_plan)


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app for ``settings``; raises :class:`SettingsError` listing every problem."""
    plan = check_startup(settings)
    policy, auth_config, mlflow_ui = plan.policy, plan.auth_config, plan.mlflow_ui

    tracking = create_tracking(settings.backend_store_uri, settings.artifacts_destination,
                               max_json_depth=plan.network.config.limits.max_json_depth,
                               max_artifact_bytes=int(settings.extra.get("max_artifact_bytes")
                                                      or DEFAULT_MAX_ARTIFACT_BYTES),
                               **settings.engine_options())
    # Lockout and invalidation share the Redis that rate limits use, whichever option named it.
    identity, authenticator = build_identity(replace(settings, redis_url=shared_redis_url(settings, policy)),
                                             auth_config, tracking.engine,
                                             lockout_namespace=plan.network.config.rate_limit.namespace)
    policy_holder = PolicyHolder(policy, tracking.engine)
    policy_holder.attach(identity.invalidation)  # grant changes travel on the identity layer's channel too
    metrics = Metrics()
    resolver = ResourceResolver(tracking.engine)
    tracking.workspaces_enabled = settings.enable_workspaces
    workspace_directory = WorkspaceDirectory(tracking.engine, enabled=settings.enable_workspaces)
    scim_token = ScimToken(auth_config.scim.token.get_secret_value()) if auth_config.scim.enabled else None
    authorizer = ObservedAuthorizer(policy_holder, resolver, identity.auditor, metrics, workspace_directory,
                                    scim_token=scim_token)
    policy_holder.on_new_generation(resolver.forget_names)
    lifecycle = ResourceLifecycle(policy_holder, resolver)
    tracking.lifecycle_listeners.append(lifecycle.in_transaction)
    tracking.commit_listeners.append(lifecycle.committed)
    audit_counter = AuditCounter(metrics)
    # Signed checkpoints, retention and the SIEM export (auth.audit_setup); threads start with the app.
    audit_services = attach_audit(plan.audit, tracking.engine, identity.auditor,
                                  on_loss=lambda sink, reason, n: metrics.audit_export_lost.labels(sink, reason).inc(n))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        identity.invalidation.start()
        audit_counter.attach(logging.getLogger("mlgate.audit"))
        audit_services.start()
        yield
        audit_services.stop()
        logging.getLogger("mlgate.audit").removeHandler(audit_counter)
        identity.invalidation.stop()
        tracking.dispose()

    app = FastAPI(
        title="mlgate",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by gateway.routes.schema, through the authorizer
        lifespan=lifespan,
        # Every route, whoever mounts it, passes the authorizer: an unclassified operation is denied.
        dependencies=[Depends(authorizer)],
    )
    app.state.settings = settings
    app.state.policy = policy
    app.state.tracking = tracking
    app.state.identity = identity
    # Deleting an account removes its stored grants: this process recompiles, the others are told (Redis).
    app.state.accounts = Accounts(identity, grants_changed=policy_holder.invalidate)
    app.state.policy_holder = policy_holder
    # SCIM provisioning (auth.scim), or None: its operations are then refused by the authorizer.
    app.state.scim = ScimProvisioning(app.state.accounts, max_results=auth_config.scim.max_results) \
        if scim_token is not None else None
    app.state.authorizer = authorizer
    app.state.audit = audit_services  # the checkpoint keeper and SIEM exporter (admin audit routes use them)
    app.state.metrics = metrics
    app.state.mlflow_ui = mlflow_ui  # MLflow's UI build served at / (None: mlgate's own pages are there)
    app.state.server_info_extra = {"mlgate_web_ui": "mlflow" if mlflow_ui else "mlgate",
                                   "mlflow_ui_version": mlflow_ui.version if mlflow_ui else None}
    install_error_handlers(app)

    @app.get("/health", operation_id="ops.health", include_in_schema=True)
    def health() -> PlainTextResponse:
        """Liveness: the process answers."""
        return PlainTextResponse("OK")

    @app.get("/version", operation_id="ops.version")
    def version(request: Request) -> PlainTextResponse:
        """The MLflow version this server is compatible with, as MLflow's ``/version`` answers it."""
        return PlainTextResponse(MLFLOW_COMPATIBLE_VERSION)

    for mount in tracking_mounts():
        app.include_router(mount.router, prefix=mount.prefix, include_in_schema=mount.in_schema)
    app.include_router(user_routes.router, prefix="/api/2.0/mlflow")
    app.include_router(user_routes.router, prefix="/ajax-api/2.0/mlflow", include_in_schema=False)
    app.include_router(schema_routes.router)
    app.include_router(login_routes.router)
    app.include_router(sso_routes.router)
    app.include_router(admin_routes.router, prefix="/api/2.0/mlgate")
    for router, api in ((permission_routes.router_v2, "2.0"), (permission_routes.router_v3, "3.0")):
        app.include_router(router, prefix=f"/api/{api}/mlflow")
        app.include_router(router, prefix=f"/ajax-api/{api}/mlflow", include_in_schema=False)
    app.include_router(workspace_routes.router, prefix="/api/3.0/mlflow")
    app.include_router(workspace_routes.router, prefix="/ajax-api/3.0/mlflow", include_in_schema=False)
    app.include_router(permission_routes.router_ui, prefix="/ajax-api/3.0/mlflow", include_in_schema=False)
    app.include_router(scim_routes.router)  # /scim/v2: the provisioning token only (Access.SCIM)
    app.include_router(ops_router)  # /ready, /metrics
    install_openapi(app)  # the document describes what the hand-parsing handlers read (gateway.openapi)
    if mlflow_ui is not None:
        app.include_router(mlflow_ui_routes.router)  # before the own pages: MLflow's UI takes /
    app.include_router(ui_routes.router)
    ui_routes.install_error_pages(app)
    # Authentication sits inside the network ring (installed below, so it wraps this layer).
    app.add_middleware(AuthenticationMiddleware, authenticator=authenticator, sessions=identity.sessions,
                       always_consult_backends=any(m not in ("session", "bearer", "basic")
                                               for m in auth_config.methods), scim_token=scim_token)
    # Last, so the network ring wraps every middleware added above (Starlette runs the newest first).
    install_network_middleware(app, settings, policy.network, plan.network)
    app.state.readiness = Readiness(tracking.engine, [shared_redis_url(settings, policy)])
    # Complete before the first request: handlers receive it as a typed dependency (gateway.context).
    setattr(app.state, SERVICES_STATE_KEY, Services(
        settings=settings, policy=policy, tracking=tracking, identity=identity, accounts=app.state.accounts,
        policy_holder=policy_holder, authorizer=authorizer, metrics=metrics, readiness=app.state.readiness,
        sso_state_signer=URLSafeTimedSerializer(session_secret(settings), salt=SSO_STATE_SALT),
        mlflow_ui=mlflow_ui, server_info_extra=MappingProxyType(dict(app.state.server_info_extra))))
    # A request bearing the scrape token is answered before the network ring (gateway.ops.scrape).
    app.add_middleware(ScrapeTokenMiddleware, metrics=metrics, token=settings.metrics_token)
    # Outermost: request ids, access log and request metrics see every answer, refusals included.
    app.add_middleware(RequestObservationMiddleware, metrics=metrics)
    return app


def shared_redis_url(settings: Settings, policy: PolicyFile) -> str | None:
    """The Redis every process shares: ``--redis-url``, else a redis:// ``network.rate_limit.storage``."""
    if settings.redis_url:
        return settings.redis_url
    storage = as_network_config(policy.network).rate_limit.storage
    return storage if storage.startswith(("redis://", "rediss://")) else None


def app_from_environment() -> FastAPI:
    """Factory for uvicorn worker processes: settings come from the parent via the environment."""
    return create_app(settings_from_environment())
