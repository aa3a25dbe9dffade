"""A request's context as typed dependencies: the app's services, and what the authorizer established.

``create_app`` builds one frozen :class:`Services` completely (nothing is built later, inside a handler)
and the authorizer returns one frozen :class:`~gateway.authz.Authorized` per request. Handlers declare
what they need in their signature::

    def handler(services: AppServices, authorized: RequestAuthorized) -> ...

so tests can replace either with ``app.dependency_overrides[services_of]``. The providers below
are the only places that read them off the app or the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from itsdangerous import URLSafeTimedSerializer
from starlette.requests import Request

from auth.accounts import Accounts
from auth.errors import Unauthenticated
from auth.identity import Identity
from auth.principal import Principal
from gateway.authz import AUTHORIZED_STATE_KEY, Authorized, Authorizer, PolicyHolder
from gateway.settings import Settings
from policies.file import PolicyFile
from tracking.services import Tracking

if TYPE_CHECKING:  # annotations only: these modules import the app's routers, which import this one
    from gateway.ops.metrics import Metrics
    from gateway.ops.readiness import Readiness
    from gateway.ui.mlflow_ui import MlflowUiBuild

SERVICES_STATE_KEY = "services"


@dataclass(frozen=True)
class Services:
    """Everything the app's handlers use, built once by ``create_app``."""

    settings: Settings
    policy: PolicyFile
    tracking: Tracking
    identity: Identity
    accounts: Accounts
    policy_holder: PolicyHolder
    authorizer: Authorizer
    metrics: Metrics
    readiness: Readiness
    # Signs the pending single sign-on (state, nonce, PKCE verifier) in its short-lived cookie.
    sso_state_signer: URLSafeTimedSerializer
    mlflow_ui: MlflowUiBuild | None = None  # MLflow's UI build served at / (None: mlgate's own pages)
    server_info_extra: Mapping[str, Any] | None = None


def services_of(request: Request) -> Services:
    """The app's services (dependency provider)."""
    return getattr(request.app.state, SERVICES_STATE_KEY)


def authorized_of(request: Request) -> Authorized:
    """What the authorizer established for this request (dependency provider; it ran before the handler)."""
    return getattr(request.state, AUTHORIZED_STATE_KEY)


AppServices = Annotated[Services, Depends(services_of)]
RequestAuthorized = Annotated[Authorized, Depends(authorized_of)]


def caller_of(authorized: RequestAuthorized) -> Principal:
    """The authenticated caller (dependency provider); anonymous callers reach no handler that asks for one."""
    if authorized.principal is None:
        raise Unauthenticated("You are not authenticated.")
    return authorized.principal


Caller = Annotated[Principal, Depends(caller_of)]
