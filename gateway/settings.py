"""Server settings: from CLI flags and ``MLGATE_*`` variables, validated with every problem listed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

SETTINGS_ENV = "MLGATE_SETTINGS_JSON"


class SettingsError(Exception):
    """The settings are invalid; ``problems`` lists each, naming the flag or variable."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs; nothing is read from the environment after this is built."""

    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str = "sqlite:///mlgate.db"
    artifacts_destination: str = "./mlartifacts"
    workers: int = 1
    policy_file: str | None = None
    # Development mode relaxes only what a developer on loopback needs (non-Secure cookies).
    dev_mode: bool = False
    allowed_hosts: tuple[str, ...] | None = None
    cors_allowed_origins: tuple[str, ...] | None = None
    redis_url: str | None = None
    # Overrides network.trusted_proxies (CIDRs of the reverse proxies whose X-Forwarded-* are believed).
    trusted_proxies: tuple[str, ...] | None = None
    data_dir: str = "."
    # Signs session cookies (MLGATE_SECRET_KEY); kept out of repr so it never reaches a log.
    secret_key: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)
    # Operations (gateway/ops): log format, the Prometheus scrape token (MLGATE_METRICS_TOKEN, never a
    # flag), how long in-flight requests may take to finish after SIGTERM.
    log_format: str = "text"
    metrics_token: str | None = field(default=None, repr=False)
    shutdown_timeout_seconds: float = 30.0
    # PostgreSQL connection pool, per process (SQLite ignores them); 0 = no statement timeout.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_seconds: float = 30.0
    db_statement_timeout_ms: int = 0
    # MLflow 3 workspaces (--enable-workspaces / MLGATE_ENABLE_WORKSPACES): clients may name one with
    # X-MLFLOW-WORKSPACE and manage them at /api/3.0/mlflow/workspaces. Off: everything is 'default'.
    enable_workspaces: bool = False
    # Which web UI answers at /: MLflow's own React UI (the mlgate[mlflow-ui] extra), mlgate's pages, or
    # "auto": MLflow's when its build is installed at the pinned version (gateway/ui/mlflow_ui.py).
    web_ui: str = "auto"

    def to_json(self) -> str:
        """Serialize for worker processes (uvicorn ``--workers`` re-imports the app factory)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        for name in ("allowed_hosts", "cors_allowed_origins", "trusted_proxies"):
            if data.get(name) is not None:
                data[name] = tuple(data[name])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> list[str]:
        """Every problem with these settings (empty when they are usable)."""
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"--port / MLGATE_PORT: {self.port} is not a TCP port (1-65535)")
        if self.workers < 1:
            problems.append(f"--workers / MLGATE_WORKERS: must be at least 1, got {self.workers}")
        if not self.backend_store_uri.startswith(("sqlite:", "postgresql", "postgres:")):
            problems.append(
                "--backend-store-uri / MLGATE_BACKEND_STORE_URI: must be a sqlite:/// or postgresql:// URI"
            )
        if self.web_ui not in WEB_UIS:
            problems.append(f"--web-ui / MLGATE_WEB_UI: must be one of {', '.join(WEB_UIS)}, got {self.web_ui!r}")
        problems += operations_problems(self)
        return problems

    def engine_options(self) -> dict:
        """Keyword arguments for ``tracking.db.engine.make_engine`` (pool and statement timeout)."""
        return {"pool_size": self.db_pool_size, "max_overflow": self.db_max_overflow,
                "pool_timeout": self.db_pool_timeout_seconds,
                "statement_timeout_ms": self.db_statement_timeout_ms or None}


LOG_FORMATS = ("text", "json")
WEB_UIS = ("auto", "mlflow", "mlgate")
MIN_METRICS_TOKEN_LENGTH = 32


def operations_problems(settings: Settings) -> list[str]:
    """Problems with the operations settings: logging, metrics, shutdown and the database pool."""
    problems = []
    if settings.log_format not in LOG_FORMATS:
        problems.append(f"--log-format / MLGATE_LOG_FORMAT: must be one of {', '.join(LOG_FORMATS)}, "
                        f"got {settings.log_format!r}")
    if settings.metrics_token is not None and len(settings.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
        problems.append(f"MLGATE_METRICS_TOKEN: must be at least {MIN_METRICS_TOKEN_LENGTH} characters "
                        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not settings.shutdown_timeout_seconds >= 0:
        problems.append("--shutdown-timeout / MLGATE_SHUTDOWN_TIMEOUT: must be 0 or more seconds, "
                        f"got {settings.shutdown_timeout_seconds}")
    if settings.db_pool_size < 1:
        problems.append(f"--db-pool-size / MLGATE_DB_POOL_SIZE: must be at least 1, got {settings.db_pool_size}")
    if settings.db_max_overflow < 0:
        problems.append("--db-max-overflow / MLGATE_DB_MAX_OVERFLOW: must be 0 or more, "
                        f"got {settings.db_max_overflow}")
    if not settings.db_pool_timeout_seconds > 0:
        problems.append("--db-pool-timeout / MLGATE_DB_POOL_TIMEOUT: must be more than 0 seconds, "
                        f"got {settings.db_pool_timeout_seconds}")
    if settings.db_statement_timeout_ms < 0:
        problems.append("--db-statement-timeout / MLGATE_DB_STATEMENT_TIMEOUT: must be 0 (none) or a number of "
                        f"milliseconds, got {settings.db_statement_timeout_ms}")
    return problems


def settings_from_environment() -> Settings:
    """Settings passed to a worker process by the parent ``mlgate server``."""
    text = os.environ.get(SETTINGS_ENV)
    return Settings.from_json(text) if text else Settings()
