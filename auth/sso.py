"""Single sign-on at request time: provider clients, SSO session re-validation and machine JWT logins.

One :class:`SingleSignOn` per app, built from ``auth.oidc``; the login routes and the authentication
backends share it, so discovery documents and key sets are fetched once per process.

Re-validation: every ``revalidate_seconds`` an SSO session must be confirmed by its provider. With a
refresh token (kept sealed on the server, see :mod:`auth.token_vault`) mlgate asks the provider itself
(refresh token grant), re-reads the user's groups from the new ID token (or UserInfo) and extends the
session; a refusal ends the session. Without one, the session ends and the browser signs in again. An
unreachable provider fails closed: the session is not extended and the request is refused until the
provider answers again (the session itself is kept, so it resumes then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from auth.audit import Auditor
from auth.errors import AuthError, Unauthenticated
from auth.lockout import Lockout
from auth.oidc import (
    NotAllowed,
    ProviderClient,
    ProviderUnreachable,
    TokenRejected,
    check_same_subject,
    looks_like_jwt,
    unverified_claims,
)
from auth.oidc_accounts import (
    OidcAccounts,
    ProviderIdentity,
    SsoSession,
    admin_flag,
    check_allowed,
    claimed_groups,
    identity_from_claims,
    verified_email,
)
from auth.principal import Principal
from auth.store import UserRow
from auth.token_vault import TokenVault
from auth.verified import VerifiedCredentials
from policies.file.oidc import OidcConfig, OidcProvider

# Seconds a verified machine JWT is trusted without checking it again (as for personal access tokens).
TOKEN_CACHE_SECONDS = 1.0
REVALIDATE = "Your single sign-on session must be confirmed by the identity provider again; sign in again."
ENDED = "The identity provider no longer confirms your single sign-on session; sign in again."
UNCONFIRMED = ("The identity provider could not be reached to confirm your single sign-on session, so mlgate "
               "does not extend it. Try again when the provider is back.")
# After the provider failed to answer, refuse for this long without asking again (no request pile-up).
UNREACHABLE_BACKOFF_SECONDS = 5.0
# Bounded memory of sessions known to be confirmed until a given time (saves a query per request).
CONFIRMED_CACHE_SIZE = 10_000
PASSWORD_SESSION = 2**62  # "confirmed until": never due
_LOCKS = 64


class SessionEnded(Unauthenticated):
    """The provider refused to confirm the session (or there is no way to ask): it has been ended."""


class SessionUnconfirmed(Unauthenticated):
    """The provider could not be asked: the session is not extended, and not ended either."""


class SingleSignOn:
    """The configured providers and the SSO account store.

    Given only what it uses of the identity layer: the verified-credential cache (machine JWTs are cached
    like access tokens), the lockout, the auditor and a user's mlgate groups.
    """

    def __init__(self, config: OidcConfig, engine: Engine, secret: str, *, credentials: VerifiedCredentials,
                 lockout: Lockout, auditor: Auditor, groups_of: Callable[[int], frozenset[str]],
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.credentials = credentials
        self.lockout = lockout
        self.auditor = auditor
        self.groups_of = groups_of
        self.accounts = OidcAccounts(engine)
        self.vault = TokenVault(secret)
        self.clock = clock
        self._confirmed: dict[str, int] = {}
        self._unreachable_until: dict[str, float] = {}
        self._locks = tuple(threading.Lock() for _ in range(_LOCKS))
        self.clients = {p.name: ProviderClient(p, clock=clock) for p in config.providers}
        self._min_revalidate_ms = min((p.revalidate_seconds for p in config.providers), default=0) * 1000
        self._machine_issuers = {p.issuer: self.clients[p.name] for p in config.providers if p.audience}

    def client(self, name: str) -> ProviderClient | None:
        """The client of the provider called ``name``."""
        return self.clients.get(name)

    # --- browser sessions ----------------------------------------------------------------------------
    def check_session(self, session_id: str, created_at: int,
                      client_address: str | None = None) -> UserRow | None:
        """Confirm an SSO session that is due; the user as renewed (groups, admin flag), or None if unchanged.

        Younger sessions, and sessions this process saw confirmed until later, cost no query.
        """
        now = int(self.clock() * 1000)
        if now - created_at < self._min_revalidate_ms or now < self._confirmed.get(session_id, 0):
            return None
        state = self.accounts.sso_session(session_id)
        if state is None:
            self._remember(session_id, PASSWORD_SESSION)  # it never becomes an SSO session
            return None
        client = self.clients.get(state.provider)
        if client is not None and now < state.revalidate_at:
            self._remember(session_id, state.revalidate_at)
            return None
        if client is None or state.refresh_token is None:
            # Re-login through the provider: a user disabled or removed from a group there loses access here.
            self.accounts.end_session(session_id, REVALIDATE)
            raise SessionEnded(REVALIDATE)
        with self._locks[hash(session_id) % _LOCKS]:
            return self._revalidate(client, session_id, client_address)

    def _remember(self, session_id: str, until: int) -> None:
        if len(self._confirmed) >= CONFIRMED_CACHE_SIZE:
            self._confirmed.clear()
        self._confirmed[session_id] = until

    def _revalidate(self, client: ProviderClient, session_id: str,
                    address: str | None) -> UserRow | None:
        """Ask the provider (refresh token grant) whether the session's user may carry on."""
        provider = client.provider
        now_s = self.clock()
        now = int(now_s * 1000)
        state = self.accounts.sso_session(session_id)  # again: another thread may have just renewed it
        if state is None or state.revoked:
            raise SessionEnded(ENDED)
        if now < state.revalidate_at:
            self._remember(session_id, state.revalidate_at)
            return None
        if now_s < self._unreachable_until.get(provider.name, 0.0):
            raise SessionUnconfirmed(UNCONFIRMED)
        hold = int((provider.timeout_seconds * 2 + 5) * 1000)
        if not self.accounts.claim_renewal(session_id, state.revalidate_at, now, now + hold):
            return self._await_renewal(session_id, now + hold)
        refresh_token = self.vault.open(state.refresh_token, owner=session_id, kind="refresh")
        try:
            if refresh_token is None or state.subject is None:
                raise TokenRejected("The session's provider tokens cannot be read (the secret key changed?).")
            tokens = client.refresh(refresh_token)
            claims = self._renewed_claims(client, tokens, state, now_s)
            who = identity_from_claims(provider, claims)
            check_allowed(provider, who)
            revalidate_at = int((now_s + provider.revalidate_seconds) * 1000)
            renewed_refresh = tokens.get("refresh_token")
            renewed_id = tokens.get("id_token")
            user = self.accounts.renew(
                provider, session_id, who, revalidate_at,
                refresh_token=(self.vault.seal(renewed_refresh, owner=session_id, kind="refresh")
                               if isinstance(renewed_refresh, str) else None),
                id_token=self.vault.seal(renewed_id, owner=session_id, kind="id") if isinstance(renewed_id, str)
                else None)
        except ProviderUnreachable as exc:
            self._unreachable_until[provider.name] = self.clock() + UNREACHABLE_BACKOFF_SECONDS
            self.accounts.release_renewal(session_id, UNCONFIRMED)
            self.auditor.record("session.revalidate", "failure", client=address,
                                    reason=f"sso:{provider.name}: {exc.message} (session kept, not extended)")
            raise SessionUnconfirmed(UNCONFIRMED) from None
        except AuthError as exc:
            message = f"{ENDED} ({exc.message})"
            self.accounts.end_session(session_id, message)
            self.auditor.record("session.revalidate", "failure", client=address,
                                    reason=f"sso:{provider.name}: {exc.message} (session ended)")
            raise SessionEnded(message) from None
        except BaseException:
            self.accounts.release_renewal(session_id, UNCONFIRMED)
            raise
        self._unreachable_until.pop(provider.name, None)
        self._remember(session_id, revalidate_at)
        self.auditor.record("session.revalidate", "success", actor=user.username, client=address,
                                reason=f"sso:{provider.name}")
        return user

    def _renewed_claims(self, client: ProviderClient, tokens: dict, state: SsoSession, now: float) -> dict:
        """The user's claims after a refresh: the new ID token's, else UserInfo's; always the same subject."""
        id_token = tokens.get("id_token")
        if isinstance(id_token, str):
            return client.validate_refreshed_id_token(id_token, state.subject or "", now)
        claims = client.userinfo(tokens["access_token"])
        check_same_subject(claims, state.subject or "")
        return claims

    def _await_renewal(self, session_id: str, deadline: int) -> UserRow | None:
        """Another process is renewing this session: wait for its outcome (briefly) rather than ask twice."""
        while int(self.clock() * 1000) < deadline:
            time.sleep(0.2)
            state = self.accounts.sso_session(session_id)
            if state is None or state.revoked:
                raise SessionEnded(state.notice if state and state.notice else ENDED)
            if int(self.clock() * 1000) < state.revalidate_at:
                self._remember(session_id, state.revalidate_at)
                return None
            if state.refreshing_until is None:
                raise SessionUnconfirmed(state.notice or UNCONFIRMED)
        raise SessionUnconfirmed(UNCONFIRMED)

    def notice(self, session_id: str) -> str | None:
        """Why this SSO session was ended or is not extended (for the sign-in page), if it was."""
        state = self.accounts.sso_session(session_id)
        return state.notice if state is not None else None

    def provider_tokens(self, session_id: str) -> tuple[str, str | None] | None:
        """(provider, last ID token) of an SSO session, for RP-initiated logout; None for a password session."""
        state = self.accounts.sso_session(session_id)
        if state is None:
            return None
        return state.provider, self.vault.open(state.id_token, owner=session_id, kind="id")

    # --- machine tokens ------------------------------------------------------------------------------
    def _client_for(self, token: str) -> ProviderClient:
        # The unverified issuer only chooses whose keys to verify with; the issuer is checked again after.
        issuer = unverified_claims(token).get("iss")
        client = self._machine_issuers.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise TokenRejected("The token is not from an identity provider configured for API access.")
        return client

    def bearer_login(self, token: str, client_address: str | None) -> Principal:
        """Authenticate a provider-issued JWT access token as its service account or linked user."""
        # Like personal access tokens: a verified JWT is trusted for a second without re-verifying, so a
        # client's burst of calls costs one signature check; expiry is still checked on every hit.
        key = self.credentials.cache.key_for("jwt", token)
        cached = self.credentials.principal(key)
        if cached is not None:
            return cached
        self.lockout.check(None, client_address)
        actor = None
        try:
            client = self._client_for(token)
            provider = client.provider
            claims = client.validate_access_token(token, self.clock())
            name = service_account_for(provider, claims)
            user = (self.accounts.service_account(name) if name
                    else self.accounts.linked_user(provider.name, claims["sub"]))
            if user is None and provider.provision_from_api_tokens and not is_client_token(claims):
                user = self._provision_from_token(provider, claims, client_address)
            if user is None:
                raise TokenRejected("The token's subject is not mapped to a service account or user.")
            actor = user.username
            if user.disabled:
                raise TokenRejected("The account of this token is disabled.")
            is_admin, groups = self._machine_grants(provider, user, claims)
        except NotAllowed as exc:
            # The provider vouched for the token, the configuration refuses its user: not a failed guess.
            self.auditor.record("token.use", "failure", actor=actor, client=client_address,
                                    reason=f"oidc: {exc.message}")
            raise
        except AuthError as exc:
            self.lockout.failed(None, client_address)
            self.auditor.record("token.use", "failure", actor=actor, client=client_address,
                                    reason=f"oidc: {exc.message}")
            raise Unauthenticated(exc.message) from None
        principal = Principal(id=user.id, kind="service" if user.kind == "service" else "user", name=user.username,
                              is_admin=is_admin, groups=groups, auth_method="oidc")
        cache = self.credentials.cache
        cache.put(key, principal, user.stamp, ttl=min(TOKEN_CACHE_SECONDS, cache.ttl),
                           token_expires_at=int(claims["exp"] * 1000))
        return principal

    def _provision_from_token(self, provider: OidcProvider, claims: dict, client_address: str | None) -> UserRow:
        """First use of a person's API token: create or link their account as a browser sign-in would.

        The same rules apply, to the token's own claims: a user name from ``claims.username``, the allowed
        groups and e-mail domains, admin groups, and ``link_existing_users`` for a same-named account.
        """
        who = identity_from_claims(provider, claims)
        check_allowed(provider, who)
        user = self.accounts.provision(provider, who)
        self.auditor.record("login", "success", actor=user.username, client=client_address,
                            reason=f"sso:{provider.name}: account provisioned from an API access token "
                                   "(provision_from_api_tokens)")
        return user

    def _machine_grants(self, provider: OidcProvider, user: UserRow, claims: dict) -> tuple[bool, frozenset[str]]:
        """(admin flag, groups) of a verified JWT's account.

        A service account keeps its mlgate groups plus the token's. A user linked to the provider is
        judged by the token as at a browser login: its groups claim is the provider's current word
        (replace mode: the only word, so a group removed there stops applying at once), and
        ``allowed_groups`` / ``allowed_email_domains`` and ``admin_groups`` apply to it.
        """
        claimed = claimed_groups(claims, provider.claims.groups, provider.group_names)
        if user.kind == "service":
            return user.is_admin, frozenset(self.groups_of(user.id) | claimed)
        who = ProviderIdentity(provider.name, claims["sub"], user.username, verified_email(provider, claims), claimed,
                               provider.claims.groups in claims)
        check_allowed(provider, who)
        groups = claimed if provider.group_sync == "replace" else frozenset(self.groups_of(user.id) | claimed)
        admin = admin_flag(provider, claimed)
        return (user.is_admin if admin is None else admin), groups


def service_account_for(provider: OidcProvider, claims: dict) -> str | None:
    """The service account a verified machine token maps to, if any.

    RFC 9068 access tokens carry ``client_id`` for every token, also one a person obtained through that
    client's authorization-code flow (then ``sub`` is the person). So ``client_id`` selects a service
    account only for a client-credentials token, whose ``sub`` is the client itself (RFC 9068 section 2.2);
    otherwise only ``sub`` is looked up (providers whose client-credentials ``sub`` is an object id).
    """
    sub = claims["sub"]
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and client_id == sub and client_id in provider.service_accounts:
        return provider.service_accounts[client_id]
    return provider.service_accounts.get(sub)


def is_client_token(claims: dict) -> bool:
    """Whether a verified token is a client-credentials (machine) token, which only ``service_accounts`` maps;
    it never becomes a person's account (``provision_from_api_tokens``).

    RFC 9068 section 2.2 (and Okta): its ``sub`` is the client itself. Providers whose ``sub`` is not:
    Keycloak (the service-account user's id, ``preferred_username`` ``service-account-<client id>``), Auth0
    (``gty`` ``client-credentials``, ``sub`` ``<client id>@clients``) and Entra ID (``idtyp`` ``app``).
    """
    clients = {c for c in (claims.get(n) for n in ("client_id", "clientId", "azp", "cid", "appid"))
               if isinstance(c, str) and c}
    sub = claims.get("sub")
    if sub in clients or claims.get("gty") == "client-credentials" or claims.get("idtyp") == "app":
        return True
    if isinstance(sub, str) and sub.endswith("@clients") and sub[:-len("@clients")] in clients:
        return True
    return claims.get("preferred_username") in {f"service-account-{c}" for c in clients}


def looks_like_provider_token(value: str) -> bool:
    """Whether a bearer credential is a JWT (as opposed to an ``mlg_`` personal access token)."""
    return looks_like_jwt(value)
