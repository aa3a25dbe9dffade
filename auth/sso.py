"""Single sign-on at request time: provider clients, SSO session re-validation and machine JWT logins.

One :class:`SingleSignOn` per app, built from ``auth.oidc``; the login routes and the authentication
backends share it, so discovery documents and key sets are fetched once per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from auth.errors import AuthError, Unauthenticated
from auth.oidc import ProviderClient, TokenRejected, looks_like_jwt, unverified_claims
from auth.oidc_accounts import OidcAccounts, claimed_groups
from auth.principal import Principal
from policies.file.oidc import OidcConfig

if TYPE_CHECKING:
    from auth.identity import Identity

# Seconds a verified machine JWT is trusted without checking it again (as for personal access tokens).
TOKEN_CACHE_SECONDS = 1.0
REVALIDATE = "Your single sign-on session must be confirmed by the identity provider again; sign in again."


class SingleSignOn:
    """The configured providers and the SSO account store."""

    def __init__(self, config: OidcConfig, engine: Engine, clock: Callable[[], float] = time.time):
        self.config = config
        self.accounts = OidcAccounts(engine)
        self.clock = clock
        self.clients = {p.name: ProviderClient(p, clock=clock) for p in config.providers}
        self._min_revalidate_ms = min((p.revalidate_seconds for p in config.providers), default=0) * 1000
        self._machine_issuers = {p.issuer: self.clients[p.name] for p in config.providers if p.audience}

    def client(self, name: str) -> ProviderClient | None:
        """The client of the provider called ``name``."""
        return self.clients.get(name)

    # --- browser sessions ----------------------------------------------------------------------------
    def check_session(self, session_id: str, created_at: int) -> None:
        """End an SSO session whose provider must vouch again; younger sessions cost no query."""
        now = int(self.clock() * 1000)
        if now - created_at < self._min_revalidate_ms:
            return
        info = self.accounts.session_info(session_id)
        if info is None:
            return  # a password session
        provider, revalidate_at = info
        if provider in self.clients and now < revalidate_at:
            return
        # Re-login through the provider: a user disabled or removed from a group there loses access here.
        self.accounts.end_session(session_id)
        raise Unauthenticated(REVALIDATE)

    # --- machine tokens ------------------------------------------------------------------------------
    def _client_for(self, token: str) -> ProviderClient:
        # The unverified issuer only chooses whose keys to verify with; the issuer is checked again after.
        issuer = unverified_claims(token).get("iss")
        client = self._machine_issuers.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise TokenRejected("The token is not from an identity provider configured for API access.")
        return client

    def bearer_login(self, identity: Identity, token: str, client_address: str | None) -> Principal:
        """Authenticate a provider-issued JWT access token as its service account or linked user."""
        # Like personal access tokens: a verified JWT is trusted for a second without re-verifying, so a
        # client's burst of calls costs one signature check; expiry is still checked on every hit.
        key = identity.cache.key_for("jwt", token)
        cached = identity._cached(key)
        if cached is not None:
            return cached
        identity.lockout.check(None, client_address)
        actor = None
        try:
            client = self._client_for(token)
            provider = client.provider
            claims = client.validate_access_token(token, self.clock())
            machine = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
            name = provider.service_accounts.get(machine or "") or provider.service_accounts.get(claims["sub"])
            user = (self.accounts.service_account(name) if name
                    else self.accounts.linked_user(provider.name, claims["sub"]))
            if user is None:
                raise TokenRejected("The token's subject is not mapped to a service account or user.")
            actor = user.username
            if user.disabled:
                raise TokenRejected("The account of this token is disabled.")
        except AuthError as exc:
            identity.lockout.failed(None, client_address)
            identity.auditor.record("token.use", "failure", actor=actor, client=client_address,
                                    reason=f"oidc: {exc.message}")
            raise Unauthenticated(exc.message) from None
        groups = identity.store.groups_of(user.id) | claimed_groups(claims, provider.claims.groups)
        principal = Principal(id=user.id, kind="service" if user.kind == "service" else "user", name=user.username,
                              is_admin=user.is_admin, groups=groups, auth_method="oidc")
        identity.cache.put(key, principal, user.generation, ttl=min(TOKEN_CACHE_SECONDS, identity.cache.ttl or 1.0),
                           token_expires_at=int(claims["exp"] * 1000))
        return principal


def looks_like_provider_token(value: str) -> bool:
    """Whether a bearer credential is a JWT (as opposed to an ``mlg_`` personal access token)."""
    return looks_like_jwt(value)
