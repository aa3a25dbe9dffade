"""The policy file's ``auth.kubernetes`` section: projected service-account tokens as machine identities.

Off unless ``issuer`` is set. Every mapping is explicit: a service account no rule names is refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.file.oidc import _loopback
from policies.file.workspaces import workspace_name_problem

# fnmatch patterns over DNS-1123 names: lowercase letters, digits, '-', '.', and the wildcards '*', '?'.
_PATTERN = re.compile(r"^[a-z0-9*?][-a-z0-9.*?]{0,252}$")
# As grants name principals (service:<name>): no ':' or spaces, so every mapped account can be granted to.
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
KUBERNETES_ALGORITHMS = ("RS256", "ES256")
# In a mapping's workspaces: the workspace named like the token's namespace (what the MLflow client's
# ``kubernetes-namespaced`` mode sends as X-MLFLOW-WORKSPACE).
NAMESPACE_WORKSPACE = "{namespace}"


# The kube-apiserver's audiences: --api-audiences defaults to the issuer; these are the usual in-cluster ones.
_API_AUDIENCES = frozenset({"https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local",
                            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})


def _api_audience(audience: str, issuer: str) -> bool:
    """Whether ``audience`` is one the API server accepts: the automounted token's, never mlgate's own."""
    return audience.rstrip("/") in _API_AUDIENCES | {issuer.rstrip("/")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _https_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{value!r} must use https ({what} over http is accepted only for a loopback address)")
    if parts.fragment:
        raise ValueError(f"{value!r} must not have a fragment")
    return value


class ServiceAccountMapping(_Section):
    """``system:serviceaccount:<namespace>:<name>`` -> mlgate ``account``; namespace and name may be patterns."""

    namespace: str = Field(description="the namespace, or an fnmatch pattern such as 'team-*'")
    name: str = Field("*", description="the service-account name, or a pattern; '*' for every one")
    account: str = Field(description="the mlgate service account the pod acts as")
    workspaces: tuple[str, ...] = Field(("default",), description="the workspaces such a pod may name in "
                                        "X-MLFLOW-WORKSPACE: workspace names, or '{namespace}' for the one named "
                                        "like the pod's namespace; any other is refused")

    @field_validator("workspaces")
    @classmethod
    def _workspaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [p for w in value if w != NAMESPACE_WORKSPACE and (p := workspace_name_problem(w))]
        if problems:
            raise ValueError(" ".join(problems) + f" (or write {NAMESPACE_WORKSPACE!r})")
        if not value:
            raise ValueError("must name at least one workspace ('default' is where a pod without the header works)")
        return value

    @field_validator("namespace", "name")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not _PATTERN.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes name or pattern")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT.match(value):
            raise ValueError(f"{value!r} is not an account name (letters, digits, '_', '.', '@', '+', '-'; no ':', "
                             "which grants could not name)")
        return value

    @model_validator(mode="after")
    def _not_everything(self) -> ServiceAccountMapping:
        # One rule for every service account of every namespace would make the whole cluster one identity.
        if set(self.namespace) <= {"*", "?"}:  # '?*' or '*?*' match every namespace as '*' does
            raise ValueError("namespace must name a namespace or a narrower pattern than '*'")
        return self


class KubernetesConfig(_Section):
    """``auth.kubernetes``: the cluster's issuer, the audience tokens must carry, their keys and the mapping."""

    issuer: str | None = Field(None, description="the cluster's service-account issuer (kube-apiserver "
                               "--service-account-issuer); the section is off without it")
    audience: str | None = Field(None, description="the audience projected tokens must name (never the API "
                                 "server's default one)")
    jwks_url: str | None = Field(None, description="where the issuer's signing keys are served; without it and "
                                 "jwks_file, found through the issuer's discovery document")
    jwks_file: Path | None = Field(None, description="a file holding the issuer's JWKS, instead of jwks_url")
    timeout_seconds: float = Field(5.0, gt=0, le=30, description="for each request to the issuer")
    algorithms: tuple[str, ...] = KUBERNETES_ALGORITHMS
    leeway_seconds: int = Field(30, ge=0, le=120)
    mappings: tuple[ServiceAccountMapping, ...] = ()

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value):
        return None if value is None else _https_url(value, "the issuer")

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value):
        return None if value is None else _https_url(value, "the key set")

    @field_validator("audience")
    @classmethod
    def _audience(cls, value):
        if value is not None and (not value.strip() or len(value) > 256):
            raise ValueError("must be a non-empty string of at most 256 characters")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value):
        bad = [a for a in value if a not in KUBERNETES_ALGORITHMS]
        if bad or not value:
            raise ValueError(f"only {', '.join(KUBERNETES_ALGORITHMS)} are accepted")
        return value

    @model_validator(mode="after")
    def _complete(self) -> KubernetesConfig:
        if self.issuer is None:
            if self.audience or self.jwks_url or self.jwks_file or self.mappings:
                raise ValueError("issuer is required when any other kubernetes option is set")
            return self
        problems = []
        if not self.audience:
            problems.append("audience is required (a token for any audience would be accepted otherwise)")
        elif _api_audience(self.audience, self.issuer):
            problems.append(f"audience {self.audience!r} is the API server's audience (its default is the issuer): "
                            "every pod's automounted token would sign in; give mlgate its own, e.g. 'mlgate'")
        if self.jwks_url is not None and self.jwks_file is not None:
            problems.append("at most one of jwks_url and jwks_file may be set (neither: the issuer's discovery "
                            "document names the key set)")
        if not self.mappings:
            problems.append("mappings is empty: no service account could sign in")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def enabled(self) -> bool:
        return self.issuer is not None
