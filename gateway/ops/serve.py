"""Running the server process: logging, multiprocess metrics, graceful shutdown, then uvicorn.

``prepare_process`` must run before the app is imported: prometheus_client picks its multiprocess mode
from ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, and every worker inherits the variable.

On SIGTERM (and Ctrl-C) uvicorn stops accepting connections and lets requests in flight finish, for at most
``--shutdown-timeout`` seconds. It then re-raises the signal it caught; the handler installed here turns
that into a normal exit (status 0), which is what service managers and orchestrators expect of a
graceful stop.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import signal
import tempfile

from gateway.ops.logs import logging_config
from gateway.ops.scale import warn_if_scaled_without_redis
from gateway.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the same name as gateway.ops.metrics (not imported here)
log = logging.getLogger("mlgate.server")


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def prepare_process(settings: Settings) -> str | None:
    """Configure logging and signals; with several workers, create the metrics directory (returned)."""
    logging.config.dictConfig(logging_config(settings.log_format))
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Fresh and private per server start: stale files from an earlier run would add to the counts.
        path = tempfile.mkdtemp(prefix="mlgate-metrics-")
        os.environ[MULTIPROC_ENV] = path
        return path
    return None


def serve(settings: Settings, app, app_factory_path: str, metrics_dir: str | None) -> None:
    """Run uvicorn: ``app`` itself with one worker, else ``app_factory_path`` in each worker process."""
    import uvicorn

    warn_if_scaled_without_redis(settings, getattr(app.state, "rate_limiter", None) and
                                 app.state.rate_limiter.storage_uri)
    options = {"host": settings.host, "port": settings.port, "proxy_headers": False, "server_header": False,
               "timeout_graceful_shutdown": settings.shutdown_timeout_seconds, "access_log": False,
               "log_config": logging_config(settings.log_format), "log_level": "info"}
    try:
        if settings.workers > 1:
            uvicorn.run(app_factory_path, factory=True, workers=settings.workers, **options)
        else:
            uvicorn.run(app, **options)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
