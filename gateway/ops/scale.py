"""What weakens when several processes run without Redis: said once, at startup, before workers start.

Several processes means ``--workers N`` on one port, or several ``mlgate server`` instances sharing a
PostgreSQL database (a SQLite file cannot be shared between machines, a PostgreSQL database is made to be:
Helm and compose deployments run replicas). Either way without Redis the warning names what weakens.
"""

from __future__ import annotations

import logging

from gateway.settings import Settings

log = logging.getLogger("mlgate.scale")

# Without Redis each process keeps these in its own memory (see SECURITY.md).
WEAKENED_WITHOUT_REDIS = (
    "rate limits: each process keeps its own budget, so a client gets up to N times the configured rate",
    "lockout: failed-login counters are per process, so an attacker gets up to N times the allowed attempts",
    "credential cache: a password change, disabling or sign-out-everywhere reaches other processes through a "
    "database check on each cached login instead of a pushed invalidation",
    "grants: a change made on one process counts on the others within a second (each polls the policy "
    "generation) instead of at once",
)


def _postgresql(settings: Settings) -> bool:
    return settings.backend_store_uri.startswith(("postgresql", "postgres:"))


def scale_out_warning(settings: Settings, rate_limit_storage: str | None = None) -> str | None:
    """The warning text when several processes may run without shared storage, else None.

    That is ``--workers`` > 1, or a PostgreSQL database (which other instances may share), without Redis.
    """
    shared = settings.redis_url or (rate_limit_storage or "").startswith(("redis://", "rediss://"))
    if shared:
        return None
    if settings.workers > 1:
        lead = f"--workers {settings.workers} without --redis-url: these guarantees weaken"
    elif _postgresql(settings):
        lead = ("PostgreSQL database without --redis-url: if several mlgate instances share this database, "
                "these guarantees weaken (N = the number of instances)")
    else:
        return None
    return (lead + ": " + "; ".join(WEAKENED_WITHOUT_REDIS)
            + ". Token revocation, sessions and grants stay shared through the database. "
            "Start Redis and pass --redis-url redis://host:6379/0 to share them.")


def warn_if_scaled_without_redis(settings: Settings, rate_limit_storage: str | None = None) -> None:
    """Log :func:`scale_out_warning` (the CLI calls this once, in the parent process)."""
    message = scale_out_warning(settings, rate_limit_storage)
    if message:
        log.warning(message)
