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
    data_dir: str = "."
    # Signs session cookies (MLGATE_SECRET_KEY); kept out of repr so it never reaches a log.
    secret_key: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialize for worker processes (uvicorn ``--workers`` re-imports the app factory)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        for name in ("allowed_hosts", "cors_allowed_origins"):
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
        return problems


def settings_from_environment() -> Settings:
    """Settings passed to a worker process by the parent ``mlgate server``."""
    text = os.environ.get(SETTINGS_ENV)
    return Settings.from_json(text) if text else Settings()
