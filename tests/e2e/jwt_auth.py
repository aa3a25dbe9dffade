"""MLGATE_E2E_AUTH=jwt: the real-client suite authenticated by a JWT access token from a real IdP.

One oidc-provider per test session issues client-credentials access tokens for mlgate's API audience
(resource indicators). Each e2e server gets a policy file naming that provider and mapping the client to
the service account ``e2e-suite``, which is NOT an administrator: everything the suite does with the token
it may do through the policy's grants (MANAGE on every experiment and registered model by name, and the
"anyone signed in may create", stated as create rules). Tests of admin-only APIs use the admin's own credentials, as in
the other modes. The token is fetched once and fetched again shortly before it expires.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path

from tests.idp import IdP, start_idp

CLIENT_ID = "e2e-suite"
# Longer than the suite takes; token() still fetches a new one when less than REFRESH_MARGIN is left.
TOKEN_LIFETIME_SECONDS = 3600
REFRESH_MARGIN_SECONDS = 300


def _expiry(token: str) -> float:
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


class JwtAuth:
    """The session's IdP, the policy that trusts it, and a current access token."""

    def __init__(self, idp: IdP):
        self.idp = idp
        self._token: str | None = None
        self._expires_at = 0.0

    def server_args(self, workdir: Path) -> list[str]:
        """``--policy`` with a provider for this IdP's tokens; the service account works under grants only."""
        policy = workdir / "jwt-policy.yaml"
        policy.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - name: e2e
        issuer: {self.idp.issuer}
        client_id: mlgate
        audience: {self.idp.api_audience}
        service_accounts: {{{CLIENT_ID}: {CLIENT_ID}}}
access:
  grants:
    - {{principal: "service:{CLIENT_ID}", resource: "experiment-name:*", permission: MANAGE}}
    - {{principal: "service:{CLIENT_ID}", resource: "model-name:*", permission: MANAGE}}
  # The service account's patterns cover every name, so without create rules every name would be its
  # alone to create (issue #18's create-claimed rule); the suite's other users create their own.
  create:
    experiments: [{{principal: "*", name: "*"}}]
    models: [{{principal: "*", name: "*"}}]
""")
        return ["--policy", str(policy)]

    def token(self) -> str:
        """A client-credentials JWT for the API audience, renewed before it expires."""
        if self._token is None or self._expires_at - time.time() < REFRESH_MARGIN_SECONDS:
            self._token = self.idp.client_credentials_token(CLIENT_ID)
            self._expires_at = _expiry(self._token)
        return self._token


def start_jwt_auth(workdir: Path) -> JwtAuth:
    """Start the IdP with one client-credentials client."""
    idp = start_idp(workdir, users={}, access_token_ttl=TOKEN_LIFETIME_SECONDS, clients=[{
        "client_id": CLIENT_ID, "client_secret": secrets.token_urlsafe(24), "grant_types": ["client_credentials"],
        "response_types": [], "redirect_uris": []}])
    return JwtAuth(idp)
