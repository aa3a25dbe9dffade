"""The tracking core's dependencies, built once per app by :func:`create_tracking`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine
from starlette.requests import Request

from tracking.db.engine import make_engine


@dataclass(frozen=True)
class Created:
    """A resource a request just created: ``kind`` is "experiment" or "registered_model"."""

    kind: str
    resource_id: str
    name: str


# Called inside the creating transaction; a listener that raises aborts the creation.
CreationListener = Callable[[Connection, Request, Created], None]
# Called after a rename committed, with the kind ("experiment") and the resource id.
RenameListener = Callable[[str, str], None]


@dataclass
class Tracking:
    """Everything a tracking handler needs: the database engine and the artifact root."""

    engine: Engine
    artifact_root: str
    # Served artifact URIs look like mlflow-artifacts:/<experiment_id>/<run_id>/artifacts.
    default_artifact_scheme: str = "mlflow-artifacts:"
    # Whether clients may name a workspace (server-info's workspaces_enabled); the gateway enforces it.
    workspaces_enabled: bool = False
    # The composition root subscribes here (e.g. to give a creator MANAGE); tracking never knows who.
    creation_listeners: list[CreationListener] = field(default_factory=list)
    # Whoever caches names by id (the authorizer's resource lookups) forgets them here.
    rename_listeners: list[RenameListener] = field(default_factory=list)

    @property
    def inline_reads(self) -> bool:
        """Whether point reads run on the event loop (a SQLite database; see tracking.api.dispatch)."""
        return self.engine.dialect.name == "sqlite"

    def created(self, conn: Connection, request: Request, event: Created) -> None:
        """Tell the listeners, in the same transaction, that ``request`` created a resource."""
        for listener in self.creation_listeners:
            listener(conn, request, event)

    def renamed(self, kind: str, resource_id: str) -> None:
        """Tell the listeners that a rename of ``kind`` ``resource_id`` has committed."""
        for listener in self.rename_listeners:
            listener(kind, resource_id)

    def dispose(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()


def create_tracking(database_uri: str, artifacts_destination: str, **engine_options) -> Tracking:
    """Build the tracking core's dependencies (no I/O besides creating the engine and artifact root)."""
    root = artifacts_destination
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        root = str(Path(root).resolve())
    return Tracking(engine=make_engine(database_uri, **engine_options), artifact_root=root)


def tracking_of(request: Request) -> Tracking:
    """The :class:`Tracking` of the app serving this request."""
    return request.app.state.tracking
