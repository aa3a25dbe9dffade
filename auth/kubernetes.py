"""Kubernetes projected service-account tokens as machine identities (issue #21, part 2).

The protocol steps are pure, with the clock passed in; the issuer's keys come from a ``fetch_jwks()``
callable (the issuer's discovery document, a URL or a file, see :func:`jwks_source`). No Kubernetes API call
is needed: a projected token is a JWT signed by the cluster's service-account issuer. A subject
``system:serviceaccount:<namespace>:<name>`` acts as an mlgate service account only through an explicit
mapping rule; an unmapped subject is refused, never given a default account.

:class:`ServiceAccountTokens` is the request-time side: it recognises a cluster token by its ``iss`` (the
configured cluster issuer, so personal access tokens and OIDC providers' JWTs never reach it), verifies it,
provisions the mapped account on first use (source ``kubernetes``) and returns a Principal limited to the
workspaces its mapping rule allows.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from auth.audit import Auditor
from auth.errors import AlreadyExists, AuthError, Unauthenticated
from auth.lockout import Lockout
from auth.oidc import (
    NotAllowed,
    ProviderUnreachable,
    TokenRejected,
    check_algorithm,
    check_audience,
    check_issuer,
    check_times,
    looks_like_jwt,
    parse_jwks,
    token_header,
    unverified_claims,
    verify_signature,
)
from auth.principal import Principal
from auth.store import IdentityStore, UserRow
from auth.verified import VerifiedCredentials
from policies.file.kubernetes import NAMESPACE_WORKSPACE, KubernetesConfig
from policies.token_scope import TokenScope

if TYPE_CHECKING:
    import httpx

SUBJECT_PREFIX = "system:serviceaccount:"
# DNS-1123 labels (namespaces) and subdomains (service-account names), as Kubernetes validates them.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DEFAULT_ALGORITHMS = ("RS256", "ES256")
SOURCE = "kubernetes"
# A burst of tokens naming made-up key ids must not make us hammer the issuer's JWKS endpoint.
MIN_REFETCH_SECONDS = 10.0
# After the issuer failed to answer, refuse for this long without asking again (no request pile-up).
UNREACHABLE_BACKOFF_SECONDS = 5.0
# Seconds a verified token is trusted without checking it again (as for personal access tokens).
TOKEN_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class ServiceAccountRule:
    """``namespace``/``name`` are exact or ``fnmatch`` patterns (``team-a``/``*``); ``account`` is the mlgate one;
    ``workspaces`` are those its pods may work in (``{namespace}``: the one named like the pod's namespace)."""

    namespace: str
    name: str
    account: str
    workspaces: tuple[str, ...] = ("default",)

    def matches(self, namespace: str, name: str) -> bool:
        return fnmatch.fnmatchcase(namespace, self.namespace) and fnmatch.fnmatchcase(name, self.name)

    def workspaces_for(self, namespace: str) -> tuple[str, ...]:
        """The allowed workspaces with ``{namespace}`` replaced by the token's namespace."""
        return tuple(dict.fromkeys(namespace if w == NAMESPACE_WORKSPACE else w for w in self.workspaces))


@dataclass(frozen=True)
class KubernetesIdentity:
    namespace: str
    name: str
    account: str
    workspaces: tuple[str, ...]
    expires_at: float


def parse_subject(claims: dict) -> tuple[str, str]:
    """``(namespace, name)`` from ``sub``; only service-account subjects are accepted."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(SUBJECT_PREFIX):
        raise TokenRejected("The token's subject is not a Kubernetes service account.")
    parts = sub[len(SUBJECT_PREFIX):].split(":")
    if len(parts) != 2 or not _NAMESPACE.match(parts[0]) or not _NAME.match(parts[1]):
        raise TokenRejected("The token's service-account subject is malformed.")
    return parts[0], parts[1]


def map_account(rules: tuple[ServiceAccountRule, ...], namespace: str, name: str) -> ServiceAccountRule:
    """The first matching rule; exact rules are written first by the operator.

    Unmapped: :class:`NotAllowed` (403): the cluster vouched for the pod, the policy does not let it in.
    """
    for rule in rules:
        if rule.matches(namespace, name):
            return rule
    raise NotAllowed(f"The service account {namespace}/{name} is not mapped to an mlgate account "
                     "(auth.kubernetes.mappings).")


class KeyCache:
    """Signing keys by kid; an unknown kid refetches the key set once (at most every ``min_refetch_seconds``).

    An issuer that did not answer is not asked again for ``UNREACHABLE_BACKOFF_SECONDS``: meanwhile every
    token is refused as unverifiable (503), never accepted.
    """

    def __init__(self, fetch_jwks: Callable[[], object], *, clock: Callable[[], float] = time.monotonic,
                 min_refetch_seconds: float = MIN_REFETCH_SECONDS):
        self._fetch = fetch_jwks
        self._clock = clock
        self._min_refetch = min_refetch_seconds
        self._keys: dict | None = None
        self._refetched_at = float("-inf")
        self._unreachable_until = float("-inf")
        self._lock = threading.Lock()

    def _load(self) -> dict:
        if self._clock() < self._unreachable_until:
            raise ProviderUnreachable("The cluster's service-account issuer could not be reached; try again shortly.")
        try:
            return parse_jwks(self._fetch())
        except ProviderUnreachable:
            self._unreachable_until = self._clock() + UNREACHABLE_BACKOFF_SECONDS
            raise

    def key(self, kid: str):
        """The key with ``kid``; :class:`TokenRejected` if the issuer does not publish it."""
        # A known kid never waits for a fetch in progress (a made-up kid's refetch from a slow issuer would
        # otherwise hold every pod's login, and its worker thread, for up to timeout_seconds).
        known = self._keys
        if known is not None and kid in known:
            return known[kid]
        with self._lock:
            if self._keys is None:
                self._keys = self._load()
            found = self._keys.get(kid)
            if found is None and self._clock() - self._refetched_at >= self._min_refetch:
                # Key rotation: the issuer may have published a new key since we fetched the set.
                self._refetched_at = self._clock()
                self._keys = self._load()
                found = self._keys.get(kid)
        if found is None:
            raise TokenRejected("The token is signed by an unknown key.")
        return found


def verify(token: str, *, issuer: str, audience: str, keys: KeyCache, rules: tuple[ServiceAccountRule, ...],
           now: float, leeway: float = 30.0, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> KubernetesIdentity:
    """Every check in order: algorithm, key, signature, issuer, audience, times, subject, mapping."""
    header = token_header(token)
    alg = check_algorithm(header, algorithms)
    kid = header.get("kid", "")
    claims = verify_signature(token, keys.key(kid if isinstance(kid, str) else ""), alg)
    check_issuer(claims, issuer)
    check_audience(claims, audience)
    check_times(claims, now, leeway, require_iat=False)
    namespace, name = parse_subject(claims)
    rule = map_account(rules, namespace, name)
    return KubernetesIdentity(namespace, name, rule.account, rule.workspaces_for(namespace), float(claims["exp"]))


# --- the issuer over HTTP (or a file) ------------------------------------------------------------------
def _get_json(http: httpx.Client, url: str) -> object:
    import httpx

    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError:
        raise ProviderUnreachable("The cluster's service-account issuer could not be reached.") from None
    if response.status_code != 200:
        raise ProviderUnreachable(f"The cluster's service-account issuer answered HTTP {response.status_code}.")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnreachable("The cluster's service-account issuer answered something that is not JSON.") from None


def discovered_jwks_uri(document: object, issuer: str) -> str:
    """``jwks_uri`` of the issuer's discovery document, whose ``issuer`` must equal the configured one exactly
    (OpenID Connect Discovery 1.0 section 4.3; the kube-apiserver serves it at the issuer's well-known path)."""
    if not isinstance(document, dict):
        raise ProviderUnreachable("The cluster issuer's discovery document is not a JSON object.")
    stated = document.get("issuer")
    if stated != issuer:
        raise ProviderUnreachable(f"The cluster issuer's discovery document states the issuer {str(stated)[:200]!r}, "
                                  f"but auth.kubernetes.issuer is {issuer!r}: set it exactly as the cluster states it.")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str) or not uri.startswith(("https://", issuer.rstrip("/") + "/")):
        raise ProviderUnreachable("The cluster issuer's discovery document names no usable jwks_uri (https, or "
                                  "under the issuer).")
    return uri


def jwks_source(config: KubernetesConfig, http: httpx.Client) -> Callable[[], object]:
    """Where the keys come from: ``jwks_file``, ``jwks_url``, or the issuer's discovery document."""
    if config.jwks_file is not None:
        path = Path(config.jwks_file)

        def from_file() -> object:
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise ProviderUnreachable(f"auth.kubernetes.jwks_file {str(path)!r} cannot be read as JSON.") from None
        return from_file
    if config.jwks_url is not None:
        url = config.jwks_url
        return lambda: _get_json(http, url)
    issuer = config.issuer or ""

    def discovered() -> object:
        document = _get_json(http, issuer.rstrip("/") + "/.well-known/openid-configuration")
        return _get_json(http, discovered_jwks_uri(document, issuer))
    return discovered


def rules_of(config: KubernetesConfig) -> tuple[ServiceAccountRule, ...]:
    """The compiled mapping rules, in the policy file's order."""
    return tuple(ServiceAccountRule(m.namespace, m.name, m.account, m.workspaces) for m in config.mappings)


class ServiceAccountTokens:
    """Request-time Kubernetes logins: given only the identity collaborators it uses."""

    def __init__(self, config: KubernetesConfig, *, store: IdentityStore, credentials: VerifiedCredentials,
                 lockout: Lockout, auditor: Auditor, http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time):
        import httpx

        if not config.enabled or not config.audience:
            raise ValueError("auth.kubernetes is not enabled")
        self.config = config
        self.issuer: str = config.issuer or ""
        self.audience: str = config.audience
        self.rules = rules_of(config)
        self.store = store
        self.credentials = credentials
        self.lockout = lockout
        self.auditor = auditor
        self.clock = clock
        self.http = http or httpx.Client(timeout=config.timeout_seconds, follow_redirects=False)
        self.keys = KeyCache(jwks_source(config, self.http))

    def issued(self, token: str) -> bool:
        """Whether ``token`` claims to come from the cluster issuer (unverified: it only chooses the verifier,
        and the issuer is checked again on the verified claims)."""
        if not looks_like_jwt(token):
            return False
        try:
            return unverified_claims(token).get("iss") == self.issuer
        except TokenRejected:
            return False

    def login(self, token: str, client_address: str | None) -> Principal:
        """Authenticate a projected service-account token as its mapped mlgate service account."""
        key = self.credentials.cache.key_for("kubernetes", token)
        cached = self.credentials.principal(key)
        if cached is not None:
            return cached
        self.lockout.check(None, client_address)
        actor = None
        try:
            found = verify(token, issuer=self.issuer, audience=self.audience, keys=self.keys, rules=self.rules,
                           now=self.clock(), leeway=self.config.leeway_seconds, algorithms=self.config.algorithms)
            actor = found.account
            user = self._account(found)
        except (NotAllowed, ProviderUnreachable) as exc:
            # Not a failed guess: the cluster vouched for a pod the policy refuses, or nobody could check.
            self.auditor.record("token.use", "failure", actor=actor, client=client_address,
                                reason=f"kubernetes: {exc.message}")
            raise
        except AuthError as exc:
            self.lockout.failed(None, client_address)
            self.auditor.record("token.use", "failure", actor=actor, client=client_address,
                                reason=f"kubernetes: {exc.message}")
            raise Unauthenticated(exc.message) from None
        # The workspaces come from the mapping, so an X-MLFLOW-WORKSPACE header outside them is refused by the
        # request's decision (policies.token_scope), and like every scoped credential it never mints tokens.
        principal = Principal(id=user.id, kind="service", name=user.username, is_admin=user.is_admin,
                              groups=self.store.groups_of(user.id), auth_method="kubernetes",
                              token_scope=TokenScope(workspaces=found.workspaces))
        cache = self.credentials.cache
        cache.put(key, principal, user.stamp, ttl=min(TOKEN_CACHE_SECONDS, cache.ttl),
                  token_expires_at=int(found.expires_at * 1000))
        return principal

    def _account(self, found: KubernetesIdentity) -> UserRow:
        """The mapped service account, created on first use (token-only, source ``kubernetes``)."""
        user = self.store.user_by_name(found.account)
        if user is None:
            try:
                user = self.store.create_user(found.account, None, kind="service", source=SOURCE)
            except AlreadyExists:
                user = self.store.user_by_name(found.account)
                if user is None:
                    raise TokenRejected("The mapped account could not be created.") from None
            else:
                self.auditor.record("user.create", "success", actor=found.account, target=found.account,
                                    reason=f"kubernetes: first token of {found.namespace}/{found.name}")
        if user.kind != "service":
            raise NotAllowed(f"{found.account!r} is a user account, not a service account; a mapping must name a "
                             "service account.")
        if user.disabled:
            raise TokenRejected("The account of this token is disabled.")
        return user
