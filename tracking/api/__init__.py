"""REST routers of the tracking core and where each is mounted.

Every route carries a stable ``operation_id`` (``runs.get``, ``artifacts.put``...): the gateway's
route table maps operation ids to the permission each needs, so an id must never be reused or renamed
lightly. The same router is mounted under several prefixes (``/api`` and ``/ajax-api``); each copy keeps
the operation id of the original.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True)
class Mount:
    """A router mounted at a prefix; ``in_schema`` is False for the duplicate ``/ajax-api`` copies."""

    router: APIRouter
    prefix: str
    in_schema: bool


def _twice(router: APIRouter, api_prefix: str) -> list[Mount]:
    ajax_prefix = api_prefix.replace("/api/", "/ajax-api/", 1)
    return [Mount(router, api_prefix, True), Mount(router, ajax_prefix, False)]


def tracking_mounts() -> list[Mount]:
    """All routers of the tracking core with their prefixes."""
    from tracking.api import (
        artifacts,
        experiments,
        graphql,
        logged_models,
        otlp,
        registry,
        runs,
        search,
        server_info,
        skills,
        traces,
        ui_features,
    )

    mounts: list[Mount] = []
    for router in (experiments.router, runs.router, search.router, registry.router, logged_models.router,
                   traces.router_v2):
        mounts += _twice(router, "/api/2.0/mlflow")
    for router in (traces.router_v3, server_info.router, skills.router):
        mounts += _twice(router, "/api/3.0/mlflow")
    mounts += _twice(artifacts.proxy_router, "/api/2.0/mlflow-artifacts")
    mounts += _twice(artifacts.ui_router, "/api/2.0/mlflow")
    mounts.append(Mount(artifacts.root_router, "", True))
    mounts.append(Mount(registry.root_router, "", True))
    mounts.append(Mount(otlp.router, "", True))
    mounts.append(Mount(graphql.router, "", False))  # MLflow's web UI's queries (POST /graphql)
    # What only MLflow's web UI calls, under its prefix only (as MLflow serves these).
    mounts.append(Mount(ui_features.router_v2, "/ajax-api/2.0/mlflow", False))
    mounts.append(Mount(ui_features.router_v3, "/ajax-api/3.0/mlflow", False))
    return mounts
