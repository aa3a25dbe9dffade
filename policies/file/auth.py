"""The policy file's ``auth:`` section: which login methods, in what order, and their limits.

Validated with every problem listed, each naming its key (``auth.lockout.user_max_failures: ...``).
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from policies.file.fields import Secret
from policies.file.kubernetes import KubernetesConfig
from policies.file.ldap import LdapConfig
from policies.file.oidc import OidcConfig

BUILTIN_METHODS = ("session", "bearer", "basic", "trusted_header")
_METHOD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# RFC 7230 section 3.2.6: a header name is a token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


class AuthConfigError(Exception):
    """The ``auth:`` section is invalid; ``problems`` lists each, naming its key."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid auth section:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockoutConfig(_Section):
    """Failed-attempt limits; after the limit, waits double per further failure up to ``max_seconds``."""

    user_max_failures: int = Field(5, ge=1, le=1000)
    address_max_failures: int = Field(20, ge=1, le=100_000)
    window_seconds: int = Field(900, ge=1, le=86_400)
    base_seconds: int = Field(30, ge=1, le=86_400)
    max_seconds: int = Field(900, ge=1, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> LockoutConfig:
        if self.max_seconds < self.base_seconds:
            raise ValueError("max_seconds must be at least base_seconds")
        return self


class SessionConfig(_Section):
    """Browser session lifetimes."""

    idle_timeout_seconds: int = Field(1800, ge=10, le=30 * 86_400)
    absolute_timeout_seconds: int = Field(12 * 3600, ge=60, le=90 * 86_400)

    @model_validator(mode="after")
    def _ordered(self) -> SessionConfig:
        if self.absolute_timeout_seconds < self.idle_timeout_seconds:
            raise ValueError("absolute_timeout_seconds must be at least idle_timeout_seconds")
        return self


class TokenConfig(_Section):
    """Personal access tokens: every token expires, at most ``max_lifetime_days`` after creation."""

    max_lifetime_days: int = Field(365, ge=1, le=3650)


class PasswordConfig(_Section):
    """Password rules and hashing cost (bcrypt rounds; each +1 doubles the cost)."""

    min_length: int = Field(12, ge=8, le=1024)
    hash_rounds: int = Field(12, ge=10, le=16)


class TrustedHeaderConfig(_Section):
    """Authentication by a header set by a reverse proxy; honoured only from the listed proxies."""

    header: str = "X-Forwarded-User"
    proxies: tuple[str, ...] = ()

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not an HTTP header name")
        if value.lower() in ("authorization", "cookie", "host"):
            raise ValueError(f"{value!r} cannot carry a trusted identity")
        return value

    @field_validator("proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = []
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                bad.append(item)
        if bad:
            raise ValueError(f"not IP addresses or networks: {', '.join(map(repr, bad))}")
        return value


# A bearer secret an identity provider presents: 32 characters at least (about 190 bits when random).
MIN_SCIM_TOKEN_LENGTH = 32


class ScimConfig(_Section):
    """SCIM 2.0 provisioning at /scim/v2, on only when ``token`` is set (RFC 7644 section 2)."""

    token: Secret | None = Field(None, description="the bearer token the identity provider presents, as a "
                                 "${ENV_VAR} reference; it opens /scim/v2 and nothing else")
    max_results: int = Field(100, ge=1, le=1000, description="the most resources one list response holds")

    @field_validator("token")
    @classmethod
    def _token(cls, value):
        if value is None:
            return value
        secret = value.get_secret_value()
        if len(secret) < MIN_SCIM_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_SCIM_TOKEN_LENGTH} characters (generate one with: "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if secret.startswith("mlg_"):
            raise ValueError("must not have the shape of a personal access token (mlg_...); generate a separate one")
        if secret != secret.strip() or any(ord(c) < 0x21 or ord(c) > 0x7E for c in secret):
            raise ValueError("must be printable ASCII without spaces (it travels in an HTTP header)")
        return value

    @property
    def enabled(self) -> bool:
        """Whether /scim/v2 answers at all."""
        return self.token is not None


class AuthConfig(_Section):
    """The ``auth:`` section."""

    methods: tuple[str, ...] = ("session", "bearer", "basic")
    # Seconds a verified password stays cached (the hash is verified at most once per credential per TTL).
    credential_cache_seconds: int = Field(60, ge=0, le=600)
    lockout: LockoutConfig = LockoutConfig()
    sessions: SessionConfig = SessionConfig()
    tokens: TokenConfig = TokenConfig()
    passwords: PasswordConfig = PasswordConfig()
    trusted_header: TrustedHeaderConfig = TrustedHeaderConfig()
    oidc: OidcConfig = OidcConfig()
    scim: ScimConfig = ScimConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    ldap: LdapConfig = LdapConfig()

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one method is required")
        bad = [m for m in value if not _METHOD_NAME.match(m)]
        if bad:
            raise ValueError(f"not method names: {', '.join(map(repr, bad))}")
        if len(set(value)) != len(value):
            raise ValueError("a method is listed twice")
        return value

    @model_validator(mode="after")
    def _oidc_needs_a_method(self) -> AuthConfig:
        # SSO logins become session cookies and machine JWTs arrive as bearer tokens: without either method
        # configured, a provider could never authenticate anyone.
        if self.oidc.providers and not {"session", "bearer"} & set(self.methods):
            raise ValueError("oidc providers need the session method (browser sign-in) or the bearer method "
                             "(machine tokens) in methods")
        return self

    @model_validator(mode="after")
    def _kubernetes_tokens_can_arrive(self) -> AuthConfig:
        if not self.kubernetes.enabled:
            return self
        problems = []
        if "bearer" not in self.methods:
            # Pods send their token as a bearer credential: without the backend the section would be ignored.
            problems.append("kubernetes: service-account tokens arrive as Bearer credentials, but 'bearer' is not "
                            "in methods")
        shared = [p.name for p in self.oidc.providers if p.issuer == self.kubernetes.issuer]
        if shared:
            # A token's iss chooses its verifier: one issuer cannot be both.
            problems.append(f"kubernetes.issuer {self.kubernetes.issuer!r} is also the issuer of oidc provider(s) "
                            f"{', '.join(shared)}; a token's issuer must say which of the two verifies it")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _ldap_needs_a_method(self) -> AuthConfig:
        # LDAP checks passwords: they arrive by HTTP Basic or through the sign-in form (a session).
        if self.ldap.enabled and not {"basic", "session"} & set(self.methods):
            raise ValueError("ldap needs the basic method (HTTP Basic) or the session method (the sign-in form) "
                             "in methods")
        return self

    @model_validator(mode="after")
    def _trusted_header_needs_proxies(self) -> AuthConfig:
        if "trusted_header" in self.methods and not self.trusted_header.proxies:
            raise ValueError("trusted_header is enabled but trusted_header.proxies is empty")
        return self


def load_auth_config(data: object) -> AuthConfig:
    """Validate the raw ``auth:`` mapping; raises :class:`AuthConfigError` listing every problem."""
    if isinstance(data, AuthConfig):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AuthConfigError(["auth: must be a mapping"])
    try:
        return AuthConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in ("auth", *err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {message}")
        raise AuthConfigError(problems) from exc
