"""The policy file's ``auth.oidc`` section: OpenID Connect providers for browser SSO and machine tokens.

Validated with every problem listed, each naming its key (``auth.oidc.providers[0].issuer: ...``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.file.fields import Secret, check_name

# Asymmetric signatures only: "none" is no signature, and HS* would let anyone holding the (public)
# client secret or a confused public key forge tokens (the alg-confusion attack).
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OidcClaims(_Section):
    """Which ID-token (or access-token) claims carry the user name, e-mail and groups."""

    username: str = "preferred_username"
    email: str = "email"
    groups: str = "groups"

    @field_validator("username", "email", "groups")
    @classmethod
    def _claim(cls, value: str) -> str:
        if not _CLAIM_NAME.match(value):
            raise ValueError(f"{value!r} is not a claim name")
        return value


class OidcProvider(_Section):
    """One OpenID Provider, found by discovery from its issuer URL."""

    name: str = Field(description="short name used in URLs: /sso/<name>/login")
    issuer: str = Field(description="the issuer URL exactly as the provider's discovery document states it")
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: Secret | None = None
    display_name: str | None = Field(None, max_length=80, description="the login button's label")
    redirect_uri: str | None = Field(
        None, description="the redirect URI registered at the provider (https://<host>/sso/<name>/callback); when "
        "set, a sign-in started at another host (localhost vs 127.0.0.1) is sent to this one first instead of "
        "ending on the provider's error page")
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    claims: OidcClaims = OidcClaims()
    allowed_groups: tuple[str, ...] = Field((), description="if set, a user must be in one of these groups")
    allowed_email_domains: tuple[str, ...] = Field((), description="if set, the verified e-mail's domain must match")
    admin_groups: tuple[str, ...] = Field((), description="members become mlgate administrators (re-checked on login)")
    group_names: dict[str, str] = Field(
        {}, description="the provider's group name -> the mlgate group name it becomes, for names mlgate cannot "
        "hold (with spaces or ':', e.g. Okta's 'ML Engineers'); other names are kept as they are, and names "
        "that are neither valid nor mapped are ignored")
    group_sync: Literal["replace", "additive"] = Field(
        "replace", description="replace: mlgate groups become exactly the IdP's at each login; additive: only added")
    link_existing_users: Literal["never", "passwordless", "any"] = Field(
        "never", description="let the first SSO login take over a same-named local account: never (refused); "
        "passwordless (only a non-admin account without a password; true means this); any (also administrators "
        "and accounts with a password)")
    trust_unverified_email: bool = Field(
        False, description="let allowed_email_domains accept an e-mail address whose email_verified claim is not "
        "true (only for a provider that verifies every address itself)")
    audience: str | None = Field(None, description="accept Bearer JWTs from this provider issued for this audience")
    service_accounts: dict[str, str] = Field(
        {}, description="machine tokens: client_id (of a client-credentials token, whose sub is its client_id) "
        "or sub -> mlgate service account name")
    provision_from_api_tokens: bool = Field(
        False, description="a person's JWT access token (for audience) creates or links their account on first use, "
        "with the same rules as a browser sign-in (allowed_groups, allowed_email_domains, admin_groups, "
        "link_existing_users), from the token's own claims; false: the API refuses a person who never signed in "
        "through the browser")
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    leeway_seconds: int = Field(60, ge=0, le=300)
    revalidate_seconds: int = Field(
        3600, ge=5, le=7 * 86_400,
        description="an SSO session is confirmed with the provider again after this (refresh token, else re-login)")
    timeout_seconds: float = Field(10.0, gt=0, le=60)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PROVIDER_NAME.match(value):
            raise ValueError(f"{value!r} is not a provider name (lowercase letters, digits, '-', at most 32)")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        # OpenID Connect Discovery section 3: the issuer uses https; plain http only for a local test IdP.
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError(f"{value!r} must use https (http is accepted only for a loopback address)")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not have a query or fragment")
        return value

    @model_validator(mode="after")
    def _redirect_uri(self) -> OidcProvider:
        if self.redirect_uri is not None:
            parts = urlsplit(self.redirect_uri)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment \
                    or parts.path != f"/sso/{self.name}/callback":
                raise ValueError(f"redirect_uri {self.redirect_uri!r} must be an http(s) URL whose path is "
                                 f"/sso/{self.name}/callback")
        return self

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include openid")
        bad = [s for s in value if not s or any(c.isspace() or c == '"' or c == "\\" for c in s)]
        if bad:
            raise ValueError(f"not scope names: {', '.join(map(repr, bad))}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one algorithm is required")
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"not allowed: {', '.join(map(repr, bad))} (only {', '.join(ASYMMETRIC_ALGORITHMS)})")
        return value

    @field_validator("link_existing_users", mode="before")
    @classmethod
    def _link_existing(cls, value: object) -> object:
        # Older files said true/false; true now links only accounts a name alone cannot escalate into.
        if value is True:
            return "passwordless"
        if value is False:
            return "never"
        return value

    @field_validator("allowed_groups", "admin_groups")
    @classmethod
    def _mlgate_group_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # These name mlgate groups (after group_names): a name no group can have would never match.
        problems = []
        for group in value:
            try:
                check_name(group)
            except ValueError as exc:
                problems.append(f"{exc}; map the provider's name to one in group_names")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("group_names")
    @classmethod
    def _group_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [source for source in value if not source or len(source) > 255]
        if bad:
            raise ValueError("a provider group name must be 1-255 characters")
        for target in value.values():
            check_name(target)
        return value

    @field_validator("allowed_email_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in value if not _DOMAIN.match(d)]
        if bad:
            raise ValueError(f"not lowercase domain names: {', '.join(map(repr, bad))}")
        return value

    @field_validator("service_accounts")
    @classmethod
    def _service_accounts(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"{k}: {v}" for k, v in value.items() if not k or not re.fullmatch(r"[^\s:]{1,255}", v or "")]
        if bad:
            raise ValueError(f"not valid account mappings: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _machine_needs_audience(self) -> OidcProvider:
        if self.service_accounts and not self.audience:
            raise ValueError("service_accounts needs audience (machine tokens are checked against it)")
        if self.provision_from_api_tokens and not self.audience:
            raise ValueError("provision_from_api_tokens needs audience (API tokens are checked against it)")
        if self.audience is not None and self.audience == self.client_id:
            # ID tokens are issued for the client id: with the same audience, an ID token (which the browser
            # sees, e.g. as the logout id_token_hint) would pass as an API access token (RFC 9068 section 4).
            raise ValueError("audience must differ from client_id (ID tokens carry the client id as their audience)")
        return self

    @property
    def label(self) -> str:
        """The text of the login button."""
        return self.display_name or self.name


class OidcConfig(_Section):
    """``auth.oidc``: the configured providers, side by side."""

    providers: tuple[OidcProvider, ...] = ()
    password_form: bool = Field(
        True, description="show the password form on /login and accept its posts; false: sign-in through the "
        "providers only (HTTP Basic for API clients is governed by auth.methods)")

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> OidcConfig:
        if not self.password_form and not self.providers:
            raise ValueError("password_form: false needs at least one provider (nobody could sign in to the UI)")
        return self

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: tuple[OidcProvider, ...]) -> tuple[OidcProvider, ...]:
        names = [p.name for p in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"provider names must be unique: {', '.join(dupes)}")
        # A machine token is routed to its provider by its issuer: two providers accepting tokens from the
        # same issuer would make one's service_accounts and audience silently shadow the other's.
        machine = [p.issuer for p in value if p.audience]
        shared = sorted({i for i in machine if machine.count(i) > 1})
        if shared:
            raise ValueError(f"only one provider per issuer may set audience (machine tokens): {', '.join(shared)}")
        return value

    def provider(self, name: str) -> OidcProvider | None:
        """The provider called ``name``, if configured."""
        return next((p for p in self.providers if p.name == name), None)
