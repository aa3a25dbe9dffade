"""What weakens when several processes run without Redis: said once, at startup, before workers start."""

from __future__ import annotations

import logging

from gateway.settings import Settings

log = logging.getLogger("mlgate.scale")

# Without Redis each process keeps these in its own memory (see SECURITY.md).
WEAKENED_WITHOUT_REDIS = (
    "rate limits: each worker keeps its own budget, so a client gets up to N times the configured rate",
    "lockout: failed-login counters are per worker, so an attacker gets up to N times the allowed attempts",
    "credential cache: a password change, disabling or sign-out-everywhere reaches other workers through a "
    "database check on each cached login instead of a pushed invalidation",
)


def scale_out_warning(settings: Settings, rate_limit_storage: str | None = None) -> str | None:
    """The warning text when ``--workers`` > 1 without shared storage, else None."""
    shared = settings.redis_url or (rate_limit_storage or "").startswith(("redis://", "rediss://"))
    if settings.workers <= 1 or shared:
        return None
    return (f"--workers {settings.workers} without --redis-url: these guarantees weaken: "
            + "; ".join(WEAKENED_WITHOUT_REDIS)
            + ". Token revocation, sessions and grants stay shared through the database. "
            "Start Redis and pass --redis-url redis://host:6379/0 to share them.")


def warn_if_scaled_without_redis(settings: Settings, rate_limit_storage: str | None = None) -> None:
    """Log :func:`scale_out_warning` (the CLI calls this once, in the parent process)."""
    message = scale_out_warning(settings, rate_limit_storage)
    if message:
        log.warning(message)
