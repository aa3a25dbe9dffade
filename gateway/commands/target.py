"""Which server or database an admin command works on, and the stored logins (a 0600 config file).

Remote mode (the default) talks to a server's REST API: ``--server``/``MLGATE_SERVER`` or the profile's
server, with ``MLGATE_TOKEN`` or the profile's token. Offline mode (``--db URI``) opens the database
directly, for bootstrap and recovery. Tokens are never accepted as command-line options: other local
users can read a process's arguments.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import click

from gateway.commands.output import EXIT_USAGE, CliError

DEFAULT_PROFILE = "default"


def config_path() -> Path:
    """``$MLGATE_CONFIG``, else ``$XDG_CONFIG_HOME/mlgate/config.json`` (``~/.config`` by default)."""
    if os.environ.get("MLGATE_CONFIG"):
        return Path(os.environ["MLGATE_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mlgate" / "config.json"


def load_profiles() -> dict[str, dict]:
    """The stored profiles (empty when there is no config file)."""
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: unreadable config file ({exc}); fix or delete it, then `mlgate login` "
                       "again.") from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return profiles if isinstance(profiles, dict) else {}


def save_profile(name: str, profile: dict) -> Path:
    """Store one profile; the file is created 0600 (it holds tokens) and replaced atomically."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    profiles = load_profiles()
    profiles[name] = profile
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"profiles": profiles}, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Target:
    """Where a command acts, resolved from options, environment and the stored profile."""

    server: str | None
    token: str | None
    db: str | None
    profile: str
    output: str

    @property
    def offline(self) -> bool:
        """Whether the command works on the database directly (``--db``)."""
        return self.db is not None

    def ops(self):
        """The operations for this target: over HTTP, or on the database."""
        if self.db is not None:
            from gateway.commands.offline import OfflineOps

            return OfflineOps(self.db)
        if not self.server:
            raise CliError("No server given: pass --server URL, set MLGATE_SERVER, or run `mlgate login` "
                           "(or use --db URI to work on a database offline).", EXIT_USAGE)
        from gateway.commands.remote import RemoteOps

        return RemoteOps(self.server, self.token)


def resolve_target(server: str | None, db: str | None, profile: str, output: str) -> Target:
    """Combine options, environment and the stored profile (a profile's token goes only to its server)."""
    if server and db:
        raise CliError("Give either --server (remote) or --db (offline), not both.", EXIT_USAGE)
    stored = load_profiles().get(profile, {}) if not db else {}
    url = (server or stored.get("server") or "").rstrip("/") or None
    token = os.environ.get("MLGATE_TOKEN") or None
    if token is None and url and stored.get("server", "").rstrip("/") == url:
        token = stored.get("token")
    return Target(url, token, db, profile, output)


def target_options(func):
    """Add --server, --db, --profile and --output to a command; it receives ``target``."""

    @click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True,
                  help="table for people, json for scripts.")
    @click.option("--profile", default=DEFAULT_PROFILE, show_default=True, envvar="MLGATE_PROFILE",
                  help="Stored login to use (see `mlgate login --profile`).")
    @click.option("--db", default=None, envvar="MLGATE_DB", metavar="URI",
                  help="Offline mode: work on this database directly (bootstrap and recovery).")
    @click.option("--server", default=None, envvar="MLGATE_SERVER", metavar="URL",
                  help="Server URL (default: MLGATE_SERVER, then the stored login).")
    @functools.wraps(func)
    def wrapper(*args, server, db, profile, output, **kwargs):
        return func(*args, target=resolve_target(server, db, profile, output), **kwargs)

    return wrapper
