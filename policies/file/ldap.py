"""The policy file's ``auth.ldap`` section: LDAP / Active Directory as a password source (search, then bind).

Off unless ``url`` is set. Passwords travel only over TLS (``ldaps://``, or ``ldap://`` with ``start_tls``)
verified against ``ca_file``; plain ``ldap://`` is refused unless ``insecure: true`` says so (a test setup), and
the server then warns at every start. The service account's password is a ``${ENV_VAR}`` reference or a file,
never written in the policy. Validated with every problem listed, each naming its key.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.file.fields import Secret, check_name

USERNAME_PLACEHOLDER = "{username}"
DN_PLACEHOLDER = "{dn}"
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
MAX_DN_LENGTH = 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dn(value: str) -> str:
    # A DN (RFC 4514) is attribute=value pairs separated by commas; its full grammar is the server's to check.
    if not value or len(value) > MAX_DN_LENGTH or "=" not in value or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"{value[:80]!r} is not a distinguished name (attribute=value,...)")
    return value


def _filter(value: str, placeholder: str) -> str:
    # RFC 4515: a filter is parenthesised; the placeholder is replaced by the escaped value, once per use.
    if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
        raise ValueError(f"{value[:80]!r} is not a parenthesised LDAP filter")
    if placeholder not in value:
        raise ValueError(f"must contain {placeholder} (replaced by the escaped value)")
    if len(value) > 1024 or any(ord(c) < 0x20 for c in value):
        raise ValueError("must be at most 1024 characters without control characters")
    return value


class LdapConfig(_Section):
    """``auth.ldap``: where the directory is, how to find a user in it, and which groups count."""

    url: str | None = Field(None, description="ldaps://host[:port], or ldap://host[:port] with start_tls; the "
                            "section is off without it")
    start_tls: bool = Field(False, description="upgrade an ldap:// connection with StartTLS (RFC 4513 section 3) "
                            "before anything is sent")
    ca_file: Path | None = Field(None, description="PEM file of the CA(s) the server's certificate must chain "
                                 "to (required with TLS); the server's name must match the certificate")
    insecure: bool = Field(False, description="accept plain ldap:// without TLS: passwords cross the network "
                           "in the clear; for a test setup only (the server warns at every start)")
    bind_dn: str | None = Field(None, description="the service account that searches for users")
    bind_password: Secret | None = Field(None, description="its password, as a ${ENV_VAR} reference")
    bind_password_file: Path | None = Field(None, description="or a file holding its password (first line)")
    user_search_base: str | None = Field(None, description="where users are searched (subtree)")
    user_filter: str = Field("(&(objectClass=inetOrgPerson)(uid={username}))",
                             description="the user search; {username} is replaced by the RFC 4515-escaped name "
                             "(Active Directory: (&(objectClass=user)(sAMAccountName={username})))")
    username_attribute: str = Field("uid", description="the entry's attribute that becomes the mlgate account "
                                    "name (Active Directory: sAMAccountName)")
    member_of_attribute: str = Field("memberOf", description="the user entry's attribute listing its groups' DNs, "
                                     "used unless group_search_base is set")
    group_search_base: str | None = Field(None, description="search groups here instead of reading "
                                          "member_of_attribute")
    group_filter: str = Field("(member={dn})", description="the group search; {dn} is the user's escaped DN")
    group_map: dict[str, str] = Field({}, description="a directory group's DN -> the mlgate group its members "
                                      "join (so grants to that group apply); groups not listed are ignored")
    connect_timeout_seconds: float = Field(5.0, gt=0, le=60, description="to open the connection (TCP and TLS)")
    receive_timeout_seconds: int = Field(10, ge=1, le=120, description="for each answer of the server (whole "
                                         "seconds: a socket option)")

    @field_validator("url")
    @classmethod
    def _url(cls, value):
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("ldaps", "ldap") or not parts.hostname:
            raise ValueError(f"{value!r} is not an ldaps:// or ldap:// URL with a host")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{value!r}: only scheme, host and port (the search base is user_search_base)")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value

    @field_validator("bind_dn", "user_search_base", "group_search_base")
    @classmethod
    def _dns(cls, value):
        return None if value is None else _dn(value)

    @field_validator("user_filter")
    @classmethod
    def _user_filter(cls, value: str) -> str:
        return _filter(value, USERNAME_PLACEHOLDER)

    @field_validator("group_filter")
    @classmethod
    def _group_filter(cls, value: str) -> str:
        return _filter(value, DN_PLACEHOLDER)

    @field_validator("username_attribute", "member_of_attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        if not _ATTRIBUTE.match(value):
            raise ValueError(f"{value!r} is not an attribute name")
        return value

    @field_validator("group_map")
    @classmethod
    def _group_map(cls, value: dict[str, str]) -> dict[str, str]:
        for dn, name in value.items():
            _dn(dn)
            check_name(name)
        return value

    @model_validator(mode="after")
    def _complete(self) -> LdapConfig:
        if self.url is None:
            return self
        problems = []
        scheme = urlsplit(self.url).scheme
        tls = scheme == "ldaps" or self.start_tls
        if scheme == "ldaps" and self.start_tls:
            problems.append("start_tls is for ldap:// URLs; ldaps:// is TLS from the first byte")
        if not tls and not self.insecure:
            problems.append("plain ldap:// would send passwords in the clear: use ldaps:// or start_tls: true with "
                            "ca_file (insecure: true accepts it, for a test setup only)")
        if tls and self.insecure:
            problems.append("insecure: true is only for plain ldap://; TLS is always verified")
        if tls and self.ca_file is None:
            problems.append("ca_file is required with TLS (the CA the server's certificate must chain to)")
        if self.bind_dn is None:
            problems.append("bind_dn is required (the service account that searches for users)")
        if (self.bind_password is None) == (self.bind_password_file is None):
            problems.append("exactly one of bind_password (a ${ENV_VAR} reference) and bind_password_file is "
                            "required")
        if self.user_search_base is None:
            problems.append("user_search_base is required")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def enabled(self) -> bool:
        """Whether LDAP is a password source at all."""
        return self.url is not None

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is TLS (ldaps://, or StartTLS)."""
        return self.url is not None and (urlsplit(self.url).scheme == "ldaps" or self.start_tls)
