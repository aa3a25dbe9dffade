"""The MLflow-compatible tracking core: storage, search, artifacts, registry and REST routers.

This package knows nothing of authentication or policies; the gateway composes it.
"""
