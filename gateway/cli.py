"""The ``mlgate`` command line."""

from __future__ import annotations

import os
import sys

import click

from gateway import __version__
from gateway.settings import SETTINGS_ENV, Settings, SettingsError

# The administration commands live in gateway.commands and are imported when named (or listed by --help and
# completion), so `mlgate server` does not pay for importing every one of them before it can serve.
_LAZY_COMMANDS = {
    "audit": "gateway.commands.audit:audit",
    "completion": "gateway.commands.completion:completion",
    "groups": "gateway.commands.groups:groups",
    "import-mlflow": "gateway.commands.import_mlflow:import_mlflow",
    "login": "gateway.commands.login:login",
    "perms": "gateway.commands.perms:perms",
    "policy": "gateway.commands.policy:policy",
    "roles": "gateway.commands.workspaces:roles",
    "service-accounts": "gateway.commands.service_accounts:service_accounts",
    "tokens": "gateway.commands.tokens:tokens",
    "users": "gateway.commands.users:users",
    "workspaces": "gateway.commands.workspaces:workspaces",
}


class _LazyGroup(click.Group):
    """A group whose commands in ``_LAZY_COMMANDS`` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY_COMMANDS:
            import importlib

            module_name, attr = _LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert command.name == cmd_name, (command.name, cmd_name)
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "MLGATE"})
@click.version_option(__version__, prog_name="mlgate")
def main() -> None:
    """mlgate: an MLflow-compatible tracking server behind a security-hardened gateway.

    Example: mlgate server --port 5000, then mlgate login --server http://127.0.0.1:5000 --username admin
    """


def _split(values: str | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(v.strip() for v in values.split(",") if v.strip())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--backend-store-uri", default="sqlite:///mlgate.db", show_default=True,
              help="Database: sqlite:///path.db or postgresql://user@host/db.")
@click.option("--artifacts-destination", default="./mlartifacts", show_default=True,
              help="Where artifacts are stored: a local directory or s3://bucket/prefix.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="Declarative policy file (YAML).")
@click.option("--allowed-hosts", default=None,
              help="Comma-separated Host header allowlist (names, *.domain suffixes, IP addresses).")
@click.option("--cors-allowed-origins", default=None, help="Comma-separated exact origins allowed by CORS.")
@click.option("--trusted-proxies", default=None,
              help="Comma-separated CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed.")
@click.option("--redis-url", default=None, help="Redis for shared rate limits, lockout and invalidation.")
@click.option("--dev", "dev_mode", is_flag=True, default=False,
              help="Development mode: allows non-Secure cookies on plain HTTP.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as text, or one JSON object per line (request id, principal, operation, status).")
@click.option("--shutdown-timeout", default=30.0, show_default=True, type=float,
              help="Seconds requests in flight may take to finish after SIGTERM.")
@click.option("--db-pool-size", default=10, show_default=True, type=int,
              help="PostgreSQL connections kept open per worker process.")
@click.option("--db-max-overflow", default=10, show_default=True, type=int,
              help="Extra PostgreSQL connections a worker may open under load.")
@click.option("--db-pool-timeout", default=30.0, show_default=True, type=float,
              help="Seconds to wait for a free PostgreSQL connection before failing the request.")
@click.option("--db-statement-timeout", default=0, show_default=True, type=int,
              help="PostgreSQL statement_timeout in milliseconds (0: none).")
@click.option("--enable-workspaces", is_flag=True, default=False,
              help="MLflow 3 workspaces: clients name one with X-MLFLOW-WORKSPACE; membership through roles.")
@click.option("--web-ui", type=click.Choice(["auto", "mlflow", "mlgate"]), default="auto", show_default=True,
              help="The web UI at /: MLflow's own (needs mlgate[mlflow-ui]), mlgate's pages, or auto "
                   "(MLflow's when installed).")
def server(**options) -> None:
    """Start the server (upgrades the database schema first).

    The Prometheus scrape token, like every secret, comes from the environment: MLGATE_METRICS_TOKEN.

    Example: mlgate server --host 127.0.0.1 --port 5000
    """
    settings = server_settings(options, os.environ)
    backend_store_uri, workers = settings.backend_store_uri, settings.workers
    from gateway.ops.serve import prepare_process, serve

    metrics_dir = prepare_process(settings)  # before the app (and prometheus_client) is imported
    from gateway.app import create_app
    from gateway.db import upgrade_database
    from tracking.db.engine import make_engine

    try:
        app = create_app(settings)  # validates everything before any worker starts
    except SettingsError as exc:
        click.echo(f"mlgate: {exc}", err=True)
        sys.exit(2)
    engine = make_engine(backend_store_uri)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    from gateway.identity import bootstrap_admin

    try:
        bootstrap_admin(app.state.identity, settings.data_dir)
    except ValueError as exc:
        click.echo(f"mlgate: {exc}", err=True)
        sys.exit(2)
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
    serve(settings, app, "gateway.app:app_from_environment", metrics_dir)


def _document_server_variables() -> None:
    # Every server flag also reads MLGATE_<FLAG> (as docs/deployment.md documents; click's automatic name is
    # MLGATE_SERVER_<FLAG>, kept as well): containers and unit files configure the server this way.
    for param in server.params:
        if isinstance(param, click.Option) and param.opts[0].startswith("--") and param.name != "help":
            name = param.opts[0][2:].upper().replace("-", "_")
            param.envvar = [f"MLGATE_{name}", f"MLGATE_SERVER_{name}"]
            param.show_envvar = True


_document_server_variables()


def server_settings(options: dict, environ) -> Settings:
    """The Settings for ``mlgate server``'s parsed options (deploy/ files are checked through this too)."""
    o = options
    return Settings(
        host=o["host"], port=o["port"], backend_store_uri=o["backend_store_uri"],
        artifacts_destination=o["artifacts_destination"], workers=o["workers"], policy_file=o["policy_file"],
        allowed_hosts=_split(o["allowed_hosts"]), cors_allowed_origins=_split(o["cors_allowed_origins"]),
        redis_url=o["redis_url"], dev_mode=o["dev_mode"], trusted_proxies=_split(o["trusted_proxies"]),
        # Secrets come from the environment only: command lines are visible to every local user.
        secret_key=environ.get("MLGATE_SECRET_KEY") or None,
        metrics_token=environ.get("MLGATE_METRICS_TOKEN") or None,
        log_format=o["log_format"], shutdown_timeout_seconds=o["shutdown_timeout"], db_pool_size=o["db_pool_size"],
        db_max_overflow=o["db_max_overflow"], db_pool_timeout_seconds=o["db_pool_timeout"],
        db_statement_timeout_ms=o["db_statement_timeout"], enable_workspaces=o.get("enable_workspaces", False),
        web_ui=o.get("web_ui", "auto"),
    )


@main.group()
def db() -> None:
    """Database schema commands. Example: mlgate db upgrade --backend-store-uri sqlite:///mlgate.db"""


@db.command("upgrade")
@click.option("--backend-store-uri", default="sqlite:///mlgate.db", show_default=True)
def db_upgrade(backend_store_uri: str) -> None:
    """Apply all migrations. Example: mlgate db upgrade --backend-store-uri sqlite:///mlgate.db"""
    from gateway.db import current_revision, upgrade_database
    from tracking.db.engine import make_engine

    engine = make_engine(backend_store_uri)
    upgrade_database(engine)
    click.echo(f"database at revision {current_revision(engine)}")
    engine.dispose()


@db.command("current")
@click.option("--backend-store-uri", default="sqlite:///mlgate.db", show_default=True)
def db_current(backend_store_uri: str) -> None:
    """Print the schema revision. Example: mlgate db current"""
    from gateway.db import current_revision, head_revision
    from tracking.db.engine import make_engine

    engine = make_engine(backend_store_uri)
    click.echo(f"current: {current_revision(engine)}  head: {head_revision()}")
    engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    main()
