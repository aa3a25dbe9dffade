"""Kubernetes projected service-account tokens as machine identities (issue #21, part 2).

Pure verification steps, I/O injected: the JWKS comes from a ``fetch_jwks(refresh)`` callable (a URL or a file,
chosen by the gateway), the clock is passed in. No Kubernetes API call is needed: a projected token is a JWT
signed by the cluster's issuer. A subject ``system:serviceaccount:<namespace>:<name>`` acts as an mlgate service
account only through an explicit mapping rule; an unmapped subject is refused, never given a default account.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from auth.errors import PermissionDenied
from auth.oidc import (
    TokenRejected,
    check_algorithm,
    check_audience,
    check_issuer,
    check_times,
    parse_jwks,
    token_header,
    verify_signature,
)

SUBJECT_PREFIX = "system:serviceaccount:"
# DNS-1123 labels (namespaces) and subdomains (service-account names), as Kubernetes validates them.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DEFAULT_ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class ServiceAccountRule:
    """``namespace``/``name`` are exact or ``fnmatch`` patterns (``team-a``/``*``); ``account`` is the mlgate one."""

    namespace: str
    name: str
    account: str

    def matches(self, namespace: str, name: str) -> bool:
        return fnmatch.fnmatchcase(namespace, self.namespace) and fnmatch.fnmatchcase(name, self.name)


@dataclass(frozen=True)
class KubernetesIdentity:
    namespace: str
    name: str
    account: str


def parse_subject(claims: dict) -> tuple[str, str]:
    """``(namespace, name)`` from ``sub``; only service-account subjects are accepted."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(SUBJECT_PREFIX):
        raise TokenRejected("The token's subject is not a Kubernetes service account.")
    parts = sub[len(SUBJECT_PREFIX):].split(":")
    if len(parts) != 2 or not _NAMESPACE.match(parts[0]) or not _NAME.match(parts[1]):
        raise TokenRejected("The token's service-account subject is malformed.")
    return parts[0], parts[1]


def map_account(rules: tuple[ServiceAccountRule, ...], namespace: str, name: str) -> str:
    """The first matching rule's account; exact rules are written first by the operator. Unmapped -> refused."""
    for rule in rules:
        if rule.matches(namespace, name):
            return rule.account
    raise TokenRejected(f"The service account {namespace}/{name} is not mapped to an mlgate account.")


def check_workspace(requested: str | None, namespace: str) -> None:
    """The namespaced client sends its namespace as the workspace; a header never widens access."""
    if requested is not None and requested != namespace:
        raise PermissionDenied(f"A service account of namespace {namespace!r} cannot act in workspace "
                               f"{requested[:64]!r}.")


class KeyCache:
    """Signing keys by kid, refetched once when a token names an unknown kid."""

    def __init__(self, fetch_jwks: Callable[[], object]):
        self._fetch = fetch_jwks
        self._keys: dict | None = None
        self._lock = threading.Lock()

    def key(self, kid: str):
        with self._lock:
            if self._keys is None:
                self._keys = parse_jwks(self._fetch())
            found = self._keys.get(kid)
            if found is None:
                self._keys = parse_jwks(self._fetch())
                found = self._keys.get(kid)
        if found is None:
            raise TokenRejected("The token is signed by an unknown key.")
        return found


def verify(token: str, *, issuer: str, audience: str, keys: KeyCache, rules: tuple[ServiceAccountRule, ...],
           now: float, leeway: float = 30.0, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
           workspace: str | None = None) -> KubernetesIdentity:
    """Every check in order: algorithm, key, signature, issuer, audience, times, subject, mapping, workspace."""
    header = token_header(token)
    alg = check_algorithm(header, algorithms)
    kid = header.get("kid", "")
    claims = verify_signature(token, keys.key(kid if isinstance(kid, str) else ""), alg)
    check_issuer(claims, issuer)
    check_audience(claims, audience)
    check_times(claims, now, leeway, require_iat=False)
    namespace, name = parse_subject(claims)
    account = map_account(rules, namespace, name)
    check_workspace(workspace, namespace)
    return KubernetesIdentity(namespace, name, account)
