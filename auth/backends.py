"""Authentication backends behind one seam: ``authenticate(conn) -> Principal | None``.

A backend returns None when the request carries no credential of its kind, a Principal when the
credential is good, and raises :class:`Unauthenticated`/:class:`LockedOut` when it is bad. The
:class:`Authenticator` tries the configured backends in order. Deployments add their own through the
``mlgate.auth_backends`` entry point group: the entry point names a factory called with the
:class:`Identity` and returning an object with ``name`` and ``authenticate(conn)``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Protocol

from starlette.requests import HTTPConnection

from auth.errors import Unauthenticated
from auth.identity import CacheMiss, Identity
from auth.principal import Principal
from auth.sessions import COOKIE_NAME
from auth.sso import looks_like_provider_token
from auth.tokens import looks_like_token

ENTRY_POINT_GROUP = "mlgate.auth_backends"
# Set by the network layer's trusted-proxy resolution (gateway/middleware/proxies.py).
CLIENT_ADDRESS_KEY = "client_ip"
PEER_ADDRESS_KEY = "peer_ip"


class AuthBackend(Protocol):
    """What every backend provides."""

    name: str

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The caller's Principal, None if this backend does not apply, or raise Unauthenticated."""


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address: the network layer's resolved one if it set it, else the TCP peer."""
    state = conn.scope.get("state") or {}
    resolved = state.get(CLIENT_ADDRESS_KEY)
    if resolved:
        return str(resolved)
    return conn.client.host if conn.client else None


def _authorization(conn: HTTPConnection, scheme: str) -> str | None:
    value = conn.headers.get("authorization")
    if not value:
        return None
    given, _, rest = value.partition(" ")
    if given.lower() != scheme:
        return None
    return rest.strip()


class BasicBackend:
    """HTTP Basic (RFC 7617): a password, or a personal access token as the password with any username."""

    name = "basic"

    def __init__(self, identity: Identity):
        self.identity = identity

    def authenticate(self, conn: HTTPConnection, *, cached_only: bool = False) -> Principal | None:
        """Verify Basic credentials."""
        encoded = _authorization(conn, "basic")
        if encoded is None:
            return None
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("Malformed Basic credentials.") from None
        username, sep, password = decoded.partition(":")
        if not sep or not password:
            raise Unauthenticated("Malformed Basic credentials.")
        if looks_like_token(password):
            return self.identity.token_login(password, client_address(conn), cached_only=cached_only)
        if not username:
            raise Unauthenticated("Malformed Basic credentials.")
        return self.identity.password_login(username, password, client_address(conn), cached_only=cached_only)

    def authenticate_cached(self, conn: HTTPConnection) -> Principal | None:
        """As :meth:`authenticate`, answered only from the verified-credential cache (else CacheMiss)."""
        return self.authenticate(conn, cached_only=True)


class BearerBackend:
    """``Authorization: Bearer mlg_...``, a provider-issued JWT or a Kubernetes service-account token (RFC 6750
    section 2.1; never in the query string).

    A JWT goes to one verifier, chosen by its (unverified) ``iss``: the cluster issuer of ``auth.kubernetes``,
    else the OIDC provider with that issuer; no verifier is tried on the off chance.
    """

    name = "bearer"

    def __init__(self, identity: Identity):
        self.identity = identity

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """Verify a bearer personal access token."""
        token = _authorization(conn, "bearer")
        if token is None:
            return None
        kubernetes = self.identity.kubernetes
        if kubernetes is not None and kubernetes.issued(token):
            return kubernetes.login(token, client_address(conn))
        if self.identity.sso is not None and looks_like_provider_token(token):
            return self.identity.sso.bearer_login(token, client_address(conn))
        if not looks_like_token(token):
            raise Unauthenticated("The access token is invalid, expired or revoked.")
        return self.identity.token_login(token, client_address(conn))

    def authenticate_cached(self, conn: HTTPConnection) -> Principal | None:
        """A cached personal access token; anything else needs :meth:`authenticate` (CacheMiss)."""
        token = _authorization(conn, "bearer")
        if token is None:
            return None
        if not looks_like_token(token) or looks_like_provider_token(token):
            raise CacheMiss
        return self.identity.token_login(token, client_address(conn), cached_only=True)


class SessionBackend:
    """The browser session cookie set by the login form.

    A request that carries an ``Authorization`` header is authenticated by that header alone: the header is
    the caller's explicit choice, while a cookie rides along with every request the browser (or a shared
    HTTP client's cookie jar) makes. So a stale cookie never turns a valid token into a 401, and a live
    cookie never stands in for a bad token.
    """

    name = "session"

    def __init__(self, identity: Identity):
        self.identity = identity

    @staticmethod
    def _cookie(conn: HTTPConnection) -> str | None:
        if conn.headers.get("authorization"):
            return None
        return conn.cookies.get(COOKIE_NAME) or None

    def authenticate_cached(self, conn: HTTPConnection) -> Principal | None:
        """None without a session cookie; a cookie is resolved by :meth:`authenticate` (CacheMiss)."""
        if self._cookie(conn):
            raise CacheMiss
        return None

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """Resolve the session cookie; the session id rides along for CSRF checks and logout."""
        cookie = self._cookie(conn)
        if not cookie:
            return None
        active = self.identity.sessions.resolve(cookie)
        user = active.user
        if self.identity.sso is not None:
            # An SSO session due for re-validation is confirmed with its provider (or ended) here.
            user = self.identity.sso.check_session(active.session.id, active.session.created_at,
                                                   client_address(conn)) or user
        conn.scope.setdefault("state", {})["session_id"] = active.session.id
        return self.identity.principal_for(user, "session")


class TrustedHeaderBackend:
    """A user name set by a reverse proxy in a header, honoured only when the TCP peer is a trusted proxy."""

    name = "trusted_header"

    def __init__(self, identity: Identity):
        self.identity = identity
        cfg = identity.config.trusted_header
        self.header = cfg.header.lower()
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in cfg.proxies)

    def _trusted_peer(self, conn: HTTPConnection) -> bool:
        # The TCP peer, not a forwarded address: only the proxy itself may vouch for a user.
        state = conn.scope.get("state") or {}
        host = state.get(PEER_ADDRESS_KEY) or (conn.client.host if conn.client else None)
        try:
            peer = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(peer in net for net in self.proxies)

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The named user, if a trusted proxy sent the header; otherwise the header is ignored."""
        name = conn.headers.get(self.header)
        if not name or not self._trusted_peer(conn):
            return None
        user = self.identity.store.user_by_name(name.strip())
        if user is None or user.disabled:
            self.identity.auditor.record("login", "failure", actor=name[:255], client=client_address(conn),
                                         reason="trusted_header: unknown or disabled user")
            raise Unauthenticated("The user named by the proxy is unknown or disabled.")
        return self.identity.principal_for(user, "trusted_header")


BUILTIN_BACKENDS = {
    "session": SessionBackend,
    "bearer": BearerBackend,
    "basic": BasicBackend,
    "trusted_header": TrustedHeaderBackend,
}


class BackendNotFound(Exception):
    """A configured method names no built-in backend and no installed entry point."""


def backend_classes(methods: Sequence[str]) -> tuple[list[type], list[str]]:
    """The backend class of each configured method (built-ins first, then entry points by name), and a
    problem for every method that names none; nothing is instantiated, so startup can check first."""
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    classes: list[type] = []
    problems: list[str] = []
    for method in methods:
        if method in BUILTIN_BACKENDS:
            classes.append(BUILTIN_BACKENDS[method])
        elif method in plugins:
            classes.append(plugins[method].load())
        else:
            problems.append(f"auth.methods: no backend named {method!r} (built-in: "
                            f"{', '.join(BUILTIN_BACKENDS)}; entry point group {ENTRY_POINT_GROUP})")
    return classes, problems


def load_backends(methods: Sequence[str], identity: Identity) -> list[AuthBackend]:
    """Instantiate the configured backends in order; :class:`BackendNotFound` names the first unknown one."""
    classes, problems = backend_classes(methods)
    if problems:
        raise BackendNotFound(problems[0])
    return [cls(identity) for cls in classes]


class Authenticator:
    """Tries each backend in order; the first that recognises a credential decides."""

    def __init__(self, backends: Sequence[AuthBackend]):
        self.backends = tuple(backends)

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The request's Principal, or None for an anonymous request."""
        for backend in self.backends:
            principal = backend.authenticate(conn)
            if principal is not None:
                return principal
        return None

    def authenticate_cached(self, conn: HTTPConnection) -> Principal | None:
        """:meth:`authenticate` when every backend can answer without a hash or a lookup, else CacheMiss.

        Cheap enough for the event loop (at most one primary-key read: the user's generation), which
        spares the hot path a hop to a worker thread; a miss goes through :meth:`authenticate` there.
        """
        for backend in self.backends:
            cached = getattr(backend, "authenticate_cached", None)
            if cached is None:
                raise CacheMiss
            principal = cached(conn)
            if principal is not None:
                return principal
        return None
