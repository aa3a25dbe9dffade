"""The identity service: verifies passwords and tokens once, caches the result, builds the Principal.

Every backend and the login form go through :meth:`Identity.password_login` and :meth:`Identity.token_login`,
so caching, lockout, rehashing and auditing happen in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from auth.audit import Auditor
from auth.credential_cache import CredentialCache, Invalidation
from auth.errors import Unauthenticated
from auth.kubernetes import ServiceAccountTokens
from auth.ldap import DirectoryRefused, LdapUnavailable
from auth.ldap_accounts import LdapSignIn, directory_decides, lockout_name
from auth.lockout import Lockout
from auth.passwords import PasswordHasher
from auth.principal import Principal
from auth.sessions import SessionManager
from auth.sso import SingleSignOn
from auth.store import IdentityStore, UserRow
from auth.tokens import token_hash
from auth.verified import GENERATION_CHECK_SECONDS, VerifiedCredentials  # noqa: F401 - re-exported
from policies.file.auth import AuthConfig
from policies.token_scope import TokenScope, load_scope

FAILED_LOGIN = "Invalid username or password."
REFUSED_ACCESS_KEY = "The access token is invalid, expired or revoked."
# A verified token is trusted this long without a lookup; revocation reaches every process within it.
TOKEN_CACHE_SECONDS = 1.0
# last_used_at (and the token-use audit record) are written at most this often per token.
TOKEN_TOUCH_MS = 60_000


class CacheMiss(Exception):
    """The credential is not in the verified-credential cache: verifying it needs a hash or a lookup."""


@dataclass
class Identity:
    """Everything identity needs at request time, built once per app."""

    config: AuthConfig
    store: IdentityStore
    hasher: PasswordHasher
    cache: CredentialCache
    invalidation: Invalidation
    lockout: Lockout
    sessions: SessionManager
    auditor: Auditor
    clock: Callable[[], float] = time.time
    # Single sign-on (auth.oidc providers), or None when no provider is configured.
    sso: SingleSignOn | None = None
    # Kubernetes service-account tokens (auth.kubernetes), or None when the section is off.
    kubernetes: ServiceAccountTokens | None = None
    # The cache hits' account check, shared with single sign-on (built from the fields above when not given).
    credentials: VerifiedCredentials | None = None
    # LDAP as a second password source (auth.ldap), or None; auth.ldap_accounts says which names it signs in.
    ldap: LdapSignIn | None = None
    # In-flight password verifications by cache key (see password_login).
    _flights: dict[bytes, tuple[threading.Lock, int]] = field(default_factory=dict, init=False, repr=False)
    _flights_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.credentials is None:
            self.credentials = VerifiedCredentials(self.cache, self.invalidation, self.store.live_stamp, self.clock)

    def principal_for(self, user: UserRow, method: str, *, token_id: str | None = None,
                      read_only: bool = False, token_scope: TokenScope | None = None) -> Principal:
        """The frozen Principal of ``user`` (one query for its groups)."""
        return Principal(id=user.id, kind="service" if user.kind == "service" else "user", name=user.username,
                         is_admin=user.is_admin, groups=self.store.groups_of(user.id), auth_method=method,
                         token_id=token_id, read_only=read_only, token_scope=token_scope)

    def _cached(self, key: bytes) -> Principal | None:
        return self.credentials.principal(key)

    def password_login(self, username: str, password: str, client: str | None, method: str = "basic", *,
                       cached_only: bool = False) -> Principal:
        """Authenticate a username and password (cache first; lockout; dummy hash for unknown users).

        ``cached_only`` answers from the verified-credential cache or raises :class:`CacheMiss`, so
        the caller can do the hash verification off the event loop.
        """
        # The method is part of the key so a cached Principal always names how it was proven.
        key = self.cache.key_for("password", method, username, password)
        principal = self._cached(key)
        if principal is not None:
            return principal
        if cached_only:
            raise CacheMiss
        # Single flight: concurrent requests with the same credential wait for one hash verification
        # instead of each spending hundreds of milliseconds of CPU on the same answer.
        with self._verifying(key):
            principal = self._cached(key)
            if principal is not None:
                return principal
            return self._password_login(key, username, password, client, method)

    @contextmanager
    def _verifying(self, key: bytes) -> Iterator[None]:
        with self._flights_lock:
            lock, waiters = self._flights.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._flights[key] = (lock, waiters + 1)
        try:
            with lock:
                yield
        finally:
            with self._flights_lock:
                lock, waiters = self._flights[key]
                if waiters == 1:
                    del self._flights[key]
                else:
                    self._flights[key] = (lock, waiters - 1)

    def _password_login(self, key: bytes, username: str, password: str, client: str | None,
                        method: str) -> Principal:
        if self.ldap is not None and directory_decides(self.store.source_of(username)):
            return self._directory_login(key, username, password, client, method)
        self.lockout.check(username, client)
        # Noted before the row is read: if an invalidation arrives while the hash is checked (the user
        # changed after this read), the result is still this request's answer but is not cached.
        epoch = self.invalidation.epoch
        user = self.store.user_by_name(username)
        stored = user.password_hash if user is not None else None
        result = self.hasher.verify(password, stored)
        if not result.ok or user is None or user.disabled or user.kind != "user":
            reason = "unknown user" if user is None else "disabled user" if user.disabled else "wrong password"
            # Audited first: the failure is recorded even when the lockout storage cannot count it (503).
            self.auditor.record("login", "failure", actor=username, client=client, reason=f"{method}: {reason}")
            locked = self.lockout.failed(username, client)
            if locked:
                self.auditor.record("lockout", "denied", actor=username, client=client,
                                    reason=f"locked for {locked}s after repeated failures")
            raise Unauthenticated(FAILED_LOGIN)
        if result.new_hash and stored is not None:
            # The cost or scheme changed since this hash was made (or it came from MLflow): upgrade it.
            self.store.rehash_password(user.id, stored, result.new_hash)
        self.lockout.succeeded(username)
        principal = self.principal_for(user, method)
        self.cache.put(key, principal, user.stamp)
        if self.invalidation.epoch != epoch:
            # Checked after the put: an invalidation applied after this check drops the entry itself.
            self.cache.discard(key)
        self.auditor.record("login", "success", actor=username, client=client, reason=method)
        return principal

    def _directory_login(self, key: bytes, username: str, password: str, client: str | None,
                         method: str) -> Principal:
        """Search-then-bind in the directory (auth.ldap), with the same lockout, cache and audit as a local password."""
        locked_name = lockout_name(username)
        self.lockout.check(locked_name, client)
        epoch = self.invalidation.epoch
        # A name without a local account costs what a local account's wrong password costs (one bcrypt
        # verification), so the answer's timing does not tell which names have local accounts.
        self.hasher.verify(password, None)
        try:
            signed_in = self.ldap.sign_in(username, password)
        except LdapUnavailable as exc:
            # Not the person's failure (no lockout count), and never a sign-in: 503 until the directory answers.
            self.auditor.record("login", "failure", actor=username, client=client,
                                reason=f"{method}: ldap unavailable: {exc.detail}")
            raise
        except DirectoryRefused as exc:
            self.auditor.record("login", "failure", actor=username, client=client,
                                reason=f"{method}: ldap: {exc.reason}")
            locked = self.lockout.failed(locked_name, client)
            if locked:
                self.auditor.record("lockout", "denied", actor=username, client=client,
                                    reason=f"locked for {locked}s after repeated failures")
            raise Unauthenticated(FAILED_LOGIN) from None
        user = signed_in.user
        self.lockout.succeeded(locked_name)
        principal = self.principal_for(user, method)
        if signed_in.groups_changed:
            # Every process drops what it cached for the account; this answer is not cached either (the next
            # request binds again, finds the groups unchanged, and caches).
            self.user_changed(user.id)
        else:
            self.cache.put(key, principal, user.stamp)
            if self.invalidation.epoch != epoch:
                self.cache.discard(key)
        self.auditor.record("login", "success", actor=user.username, client=client, reason=f"{method}: ldap")
        return principal

    def token_login(self, token: str, client: str | None, *, cached_only: bool = False) -> Principal:
        """Authenticate a personal access token: one indexed lookup of its SHA-256, briefly cached."""
        key = self.cache.key_for("token", token)
        principal = self._cached(key)
        if principal is not None:
            return principal
        if cached_only:
            raise CacheMiss
        self.lockout.check(None, client)
        found = self.store.token_with_owner(token_hash(token))
        now = int(self.clock() * 1000)
        if found is None:
            self._token_failed(client, None, "unknown token")
        row, user = found
        if row.revoked_at is not None:
            self._token_failed(client, row.id, "revoked token", user.username)
        # The policy's maximum lifetime applies to tokens made before it was lowered too.
        expires_at = min(row.expires_at, row.created_at + self.config.tokens.max_lifetime_days * 86_400_000)
        if expires_at <= now:
            self._token_failed(client, row.id, "expired token" if row.expires_at <= now else
                               "token older than auth.tokens.max_lifetime_days", user.username)
        if user.disabled:
            self._token_failed(client, row.id, "disabled user", user.username)
        try:
            scope = load_scope(row.scope)
        except ValueError:
            # A scope this version cannot read never widens access: the token is refused.
            self._token_failed(client, row.id, "unreadable token scope", user.username)
        principal = self.principal_for(user, "token", token_id=row.id, read_only=row.read_only, token_scope=scope)
        self.cache.put(key, principal, user.stamp, ttl=min(TOKEN_CACHE_SECONDS, self.cache.ttl or 1.0),
                       token_expires_at=expires_at)
        if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_MS:
            self.store.touch_token(row.id, now)
            self.auditor.record("token.use", "success", actor=user.username, target=row.id, client=client)
        return principal

    def _token_failed(self, client: str | None, token_id: str | None, reason: str, owner: str | None = None):
        self.lockout.failed(None, client)
        self.auditor.record("token.use", "failure", actor=owner, target=token_id, client=client, reason=reason)
        raise Unauthenticated(REFUSED_ACCESS_KEY)

    def user_changed(self, user_id: int) -> None:
        """Drop cached credentials of a user everywhere (the database generation was bumped already)."""
        self.credentials.forget_user(user_id)
        self.invalidation.publish(user_id)
