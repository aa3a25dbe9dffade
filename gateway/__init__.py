"""The composition root: settings, the ASGI app factory, middleware, the CLI and the web UI."""

__version__ = "0.1.0"

# The MLflow REST API level mlgate serves. MLflow's client reads GET /version to choose features
# (e.g. OTLP trace export needs >= 3.4), so /version answers this, not mlgate's own version.
MLFLOW_COMPATIBLE_VERSION = "3.17.2"
