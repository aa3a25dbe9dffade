"""Authorization follows resources through their lifecycle, in the transaction that changes them.

Tracking reports every create, rename, delete and restore of an experiment or registered model (prompts
included) twice: inside the changing transaction (:meth:`ResourceLifecycle.in_transaction`), where grants
change with the resource or not at all, and after the commit (:meth:`ResourceLifecycle.committed`), where
this process drops what it cached and every other process is told (the Redis push grant changes use;
without Redis, the policy generation they poll at most every second).

- created: the creator gets MANAGE on the new resource's stable id (an experiment id, a model's
  ``model-id``), so a re-created name starts with its creator's grant only.
- renamed: stored grants name the stable id, so they stay with the resource. The generation is bumped, so
  every process forgets the old name (which name patterns matched) on its next policy check.
- deleted: a registered model is deleted for good, with every grant on it. An experiment is only
  soft-deleted (MLflow keeps its name and lets it be restored), so its grants stay and a restore brings
  back exactly its own grants; nothing else can take its id or, while it exists, its name.
"""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.requests import Request

from auth.grants import bump_generation, put_grant, revoke_resource
from auth.principal import Principal
from gateway.authz import PolicyHolder, ResourceResolver
from tracking.services import Lifecycle

# Events after which grants or cached names changed, so every process must re-read the policy.
_POLICY_CHANGES = {("created", "experiment"), ("created", "registered_model"), ("renamed", "experiment"),
                   ("renamed", "registered_model"), ("deleted", "registered_model")}


def stored_selector(kind: str, resource_id: str) -> str:
    """The selector a stored grant on one resource uses: its id, never its name."""
    return f"experiment:{resource_id}" if kind == "experiment" else f"model-id:{resource_id}"


class ResourceLifecycle:
    """Tracking's lifecycle listener (see the module docstring)."""

    def __init__(self, holder: PolicyHolder, resolver: ResourceResolver):
        self.holder = holder
        self.resolver = resolver

    def in_transaction(self, conn: Connection, request: Request, event: Lifecycle) -> None:
        """Change grants with the resource, in the same transaction (raising aborts the change)."""
        if event.action == "created":
            principal: Principal | None = getattr(request.state, "principal", None)
            if principal is not None:
                key = f"{principal.kind}:{principal.name}"
                put_grant(conn, key, stored_selector(event.kind, event.resource_id), "MANAGE", source="owner",
                          created_by=key)
        elif event.action == "deleted" and event.kind == "registered_model":
            revoke_resource(conn, stored_selector(event.kind, event.resource_id))
            bump_generation(conn)  # also when it held no grant: decisions memoised on it must go
        elif event.action == "renamed":
            bump_generation(conn)

    def committed(self, request: Request, event: Lifecycle) -> None:
        """Drop this process's caches and tell the others, now that the change is visible to them."""
        if event.action == "renamed":
            self.resolver.renamed(event.kind, event.resource_id)
        if (event.action, event.kind) in _POLICY_CHANGES:
            self.holder.invalidate()
