"""Counts the authorizer's decisions and tells the access log which operation a request was.

:class:`ObservedAuthorizer` is the app's :class:`~gateway.authz.Authorizer` with a counter around each
call: it changes no decision, it only records what the authorizer decided.
"""

from __future__ import annotations

from starlette.requests import Request

from auth.audit import Auditor
from auth.errors import AuthError
from gateway.authz import Authorized, Authorizer, PolicyHolder, ResourceResolver
from gateway.ops.access import OPERATION_KEY
from gateway.ops.metrics import Metrics
from tracking.errors import MlflowError


class ObservedAuthorizer(Authorizer):
    """The authorizer, counting each outcome: allowed, denied (with the error code) or invalid."""

    def __init__(self, holder: PolicyHolder, resolver: ResourceResolver, auditor: Auditor | None, metrics: Metrics,
                 workspaces=None, *, scim_token=None):
        super().__init__(holder, resolver, auditor, workspaces, scim_token=scim_token)
        self.metrics = metrics

    async def __call__(self, request: Request) -> Authorized:
        operation = getattr(request.scope.get("route"), "operation_id", None) or "unclassified"
        setattr(request.state, OPERATION_KEY, operation)
        try:
            authorized = await super().__call__(request)
        except AuthError as exc:  # UNAUTHENTICATED (401) or a lockout (429), decided from the credentials
            self._denied(operation, exc.code)
            raise
        except MlflowError as exc:
            if exc.status in (401, 403, 404):  # refusals; 404 is a hidden resource, answered as missing
                self._denied(operation, exc.error_code)
            else:  # a malformed request the authorizer could not locate a resource for
                self.metrics.decisions.labels(operation, "invalid").inc()
            raise
        self.metrics.decisions.labels(operation, "allowed").inc()
        return authorized

    def _denied(self, operation: str, error_code: str) -> None:
        self.metrics.decisions.labels(operation, "denied").inc()
        self.metrics.denials.labels(operation, error_code).inc()
