"""The tracking core's dependencies, built once per app by :func:`create_tracking`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine
from starlette.requests import Request

from tracking.db.engine import make_engine

_PENDING_KEY = "lifecycle_pending"  # events of this request, awaiting their commit
# Limits the composition root may change (the gateway passes its network limits): JSON nesting of a
# request body, and the size of one uploaded artifact.
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_MAX_ARTIFACT_BYTES = 5 * 1024**3


Action = Literal["created", "renamed", "deleted", "restored"]


@dataclass(frozen=True)
class Lifecycle:
    """Something a request did to a resource's identity: created, renamed, deleted or restored it.

    ``kind`` is "experiment", "registered_model" (prompts included) or "trace"; ``resource_id`` is the id that
    never changes and is never reused (an experiment's id, a registered model's stable id, a trace id) and
    ``name`` the name after the event (None for traces).
    """

    action: Action
    kind: str
    resource_id: str
    name: str | None = None


# Called inside the changing transaction; a listener that raises aborts the change.
LifecycleListener = Callable[[Connection, Request, Lifecycle], None]
# Called after the transaction committed (to drop caches and tell other processes).
CommitListener = Callable[[Request, Lifecycle], None]


@dataclass
class Tracking:
    """Everything a tracking handler needs: the database engine and the artifact root."""

    engine: Engine
    artifact_root: str
    # Served artifact URIs look like mlflow-artifacts:/<experiment_id>/<run_id>/artifacts.
    default_artifact_scheme: str = "mlflow-artifacts:"
    # Whether clients may name a workspace (server-info's workspaces_enabled); the gateway enforces it.
    workspaces_enabled: bool = False
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    # The composition root subscribes here (a creator gets MANAGE, a deleted model's grants go, caches are
    # dropped); tracking never knows who or what is cached.
    lifecycle_listeners: list[LifecycleListener] = field(default_factory=list)
    commit_listeners: list[CommitListener] = field(default_factory=list)

    @property
    def inline_reads(self) -> bool:
        """Whether point reads run on the event loop (a SQLite database; see tracking.api.dispatch)."""
        return self.engine.dialect.name == "sqlite"

    def changed(self, conn: Connection, request: Request, event: Lifecycle) -> None:
        """Tell the listeners, in the same transaction, what ``request`` did; remembered for :meth:`committed`."""
        for listener in self.lifecycle_listeners:
            listener(conn, request, event)
        pending = getattr(request.state, _PENDING_KEY, None)
        if pending is None:
            pending = []
            setattr(request.state, _PENDING_KEY, pending)
        pending.append(event)

    def committed(self, request: Request) -> None:
        """Tell the listeners that the events :meth:`changed` reported for ``request`` have committed."""
        pending = getattr(request.state, _PENDING_KEY, None) or []
        setattr(request.state, _PENDING_KEY, [])
        for event in pending:
            for listener in self.commit_listeners:
                listener(request, event)

    def dispose(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()


def create_tracking(database_uri: str, artifacts_destination: str, *, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
                    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES, **engine_options) -> Tracking:
    """Build the tracking core's dependencies (no I/O besides creating the engine and artifact root)."""
    root = artifacts_destination
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        root = str(Path(root).resolve())
    return Tracking(engine=make_engine(database_uri, **engine_options), artifact_root=root,
                    max_json_depth=max_json_depth, max_artifact_bytes=max_artifact_bytes)


def tracking_of(request: Request) -> Tracking:
    """The :class:`Tracking` of the app serving this request."""
    return request.app.state.tracking
