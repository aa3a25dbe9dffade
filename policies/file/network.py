"""The policy file's ``network:`` section: hosts, CORS, proxies, limits, headers and rate limits.

Every rule is checked at load and every broken entry is reported with its key, so an operator fixes a
file in one pass. The checks are plain functions too, because the CLI overrides (``--allowed-hosts``,
``--cors-allowed-origins``) must obey exactly the same rules as the file.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

# One DNS label (RFC 1123): letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_UNITS = "second|minute|hour|day|month|year"
# The grammar of the `limits` library ("100/minute", "100 per 2 hours"), several joined by ";" or ",".
_ONE_RATE = rf"\s*[1-9][0-9]*\s*(?:/|per)\s*(?:[1-9][0-9]*\s*)?(?:{_UNITS})s?\s*"
_RATE = re.compile(rf"^{_ONE_RATE}(?:[;,]{_ONE_RATE})*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*([0-9]+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3,
                 "gib": 1024**3}


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address written in ``text`` (IPv6 with or without brackets), or None for a name."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def host_entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be an allowed-hosts entry (a name, ``*.domain`` or an IP address), or None."""
    value = entry.strip().lower()
    if not value:
        return "an empty entry is not a host name"
    if value == "*":
        return "'*' would accept any Host header and re-open DNS rebinding; list the names clients use"
    if _ip_literal(value) is not None:
        return None
    if ":" in value or "/" in value:
        return f"{entry!r} is not a host name or IP address (give names without a port, scheme or path)"
    if value.startswith("*."):
        labels = value[2:].rstrip(".").split(".")
        if len(labels) < 2:
            return f"{entry!r} is too broad: a wildcard needs a domain of at least two labels (*.example.org)"
    elif "*" in value:
        return (f"{entry!r}: wildcards are only allowed as a leading '*.' on a domain; string prefixes "
                "such as '10.*' also match attacker names like 10.rebind.evil.example")
    else:
        labels = value.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        return f"{entry!r} is not a valid host name"
    if all(label.isdigit() for label in labels):
        return f"{entry!r} looks like a partial IP address; give the full address"
    return None


def normalize_origin(text: str) -> str | None:
    """``scheme://host[:port]`` in lower case without the default port, or None if ``text`` is not one."""
    match = re.match(r"^(https?)://(\[[0-9a-fA-F:.]+\]|[^/:?#@\[\]]+)(?::([0-9]{1,5}))?$", text.strip())
    if match is None:
        return None
    scheme, host, port = match.group(1).lower(), match.group(2).lower(), match.group(3)
    if port is not None and not 0 < int(port) < 65536:
        return None
    if port is None or (scheme, int(port)) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def origin_entry_problem(entry: str, allow_credentials: bool) -> str | None:
    """Why ``entry`` cannot be a CORS allowed origin, or None."""
    value = entry.strip()
    if value == "*":
        if allow_credentials:
            return ("'*' together with allow_credentials would let every site read responses with the "
                    "user's cookies; list exact origins or set network.cors.allow_credentials: false")
        return None
    if value.lower() == "null":
        return "'null' is the origin of sandboxed frames and local files, never a trusted site"
    if "*" in value:
        return f"{entry!r}: only exact origins are allowed (scheme://host[:port]), no wildcards"
    if normalize_origin(value) is None:
        return f"{entry!r} is not an origin of the form http(s)://host[:port] without a path"
    return None


def proxy_entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be a trusted-proxy network (an address or CIDR), or None."""
    try:
        ipaddress.ip_network(entry.strip(), strict=True)
    except ValueError as exc:
        return f"{entry!r} is not an IP address or network in CIDR notation ({exc})"
    return None


def rate_problem(text: str) -> str | None:
    """Why ``text`` is not a rate such as ``6000/minute`` or ``10 per 2 hours``, or None."""
    if not _RATE.match(text):
        return (f"{text!r} is not a rate; write e.g. '6000/minute' or '100 per 2 hours' "
                "(several joined with ';')")
    return None


def parse_size(value: int | str) -> int:
    """A byte count from an int or a string such as ``16 MiB``; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a size; write bytes or e.g. '16 MiB', '5 GiB'")
    return int(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "b").lower()]


def _fail(message: str) -> PydanticCustomError:
    # A custom error type keeps pydantic's "Value error, " prefix out of operator-facing messages.
    return PydanticCustomError("network", message)


def _entry(check):
    """An item validator: pydantic then reports each bad list entry under its own index."""

    def validate(value: str) -> str:
        if (problem := check(value)) is not None:
            raise _fail(problem)
        return value

    return AfterValidator(validate)


_HEADER_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

HostEntry = Annotated[str, _entry(host_entry_problem)]
ProxyEntry = Annotated[str, _entry(proxy_entry_problem)]
OriginEntry = Annotated[str, _entry(lambda v: origin_entry_problem(v, allow_credentials=False))]
HeaderName = Annotated[str, _entry(lambda v: None if _HEADER_TOKEN.match(v) and "*" not in v else
                                   f"{v!r} is not a header name (wildcards are not accepted)")]
Method = Annotated[str, _entry(lambda v: None if v in _METHODS else f"{v!r} is not one of {list(_METHODS)}")]
PathPrefix = Annotated[str, _entry(lambda v: None if v.startswith("/") and " " not in v else
                                   f"{v!r} is not a path prefix starting with '/'")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorsConfig(_Section):
    """``network.cors``: which other sites' pages may call the API from a browser."""

    allowed_origins: list[OriginEntry] = []
    allow_credentials: bool = True
    allowed_methods: list[Method] = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    allowed_headers: list[HeaderName] = ["Authorization", "Content-Type", "X-Requested-With"]
    expose_headers: list[HeaderName] = []
    max_age: int = Field(600, ge=0, le=86400)

    @model_validator(mode="after")
    def _no_credentialed_wildcard(self) -> CorsConfig:
        if "*" in (o.strip() for o in self.allowed_origins) and self.allow_credentials:
            raise _fail(f"allowed_origins: {origin_entry_problem('*', True)}")
        return self


class LimitsConfig(_Section):
    """``network.limits``: request sizes checked before any handler runs."""

    max_body_bytes: int = 16 * 1024**2
    max_artifact_bytes: int = 5 * 1024**3
    max_json_depth: int = Field(64, ge=2, le=500)
    max_query_bytes: int = Field(16 * 1024, ge=256)
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    max_header_count: int = Field(100, ge=8)

    @field_validator("max_body_bytes", "max_artifact_bytes", mode="before")
    @classmethod
    def _size(cls, value: int | str) -> int:
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        if size < 1024:
            raise _fail(f"{value!r} is below the minimum of 1 KiB")
        return size


class HeadersConfig(_Section):
    """``network.headers``: security headers added to every response."""

    frame_ancestors: Literal["none", "self"] = "none"
    referrer_policy: Literal["no-referrer", "same-origin", "strict-origin",
                             "strict-origin-when-cross-origin"] = "no-referrer"
    content_security_policy: str = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
    )
    hsts_max_age: int = Field(31536000, ge=0)
    hsts_include_subdomains: bool = False

    @field_validator("content_security_policy")
    @classmethod
    def _csp(cls, value: str) -> str:
        if not value.strip() or any(ch in value for ch in "\r\n"):
            raise _fail("must be a non-empty single-line Content-Security-Policy")
        if "frame-ancestors" in value:
            raise _fail("leave out frame-ancestors: it is set from network.headers.frame_ancestors")
        return value.strip()


# Paths whose writes are worth a tighter budget: password guessing (login form, password changes),
# account creation and token minting (users/tokens/create).
DEFAULT_SENSITIVE_PATHS = (
    "/login",
    "/api/2.0/mlflow/users/",
    "/ajax-api/2.0/mlflow/users/",
)


class RateLimitConfig(_Section):
    """``network.rate_limit``: request budgets per client address and per authenticated principal."""

    enabled: bool = True
    storage: str = "memory://"
    strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = "fixed-window"
    # Every request from one address, before authentication. Above what one server process can answer
    # (~1,000 requests/s), so a sweep of many jobs on one host is bounded by the server, never refused;
    # see docs/network.md "Rate-limit defaults" for the numbers.
    per_client: str = "60000/minute"
    # Requests from one address that end without an identity (no credentials, or credentials that failed).
    anonymous: str = "6000/minute"
    per_principal: str = "60000/minute"
    sensitive: str = "30/minute"
    # Sensitive writes by an authenticated administrator (scripting `mlgate users create` for a team).
    sensitive_admin: str = "600/minute"
    sensitive_paths: list[PathPrefix] = list(DEFAULT_SENSITIVE_PATHS)
    namespace: str = Field("mlgate", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @field_validator("per_client", "anonymous", "per_principal", "sensitive", "sensitive_admin")
    @classmethod
    def _rate(cls, value: str) -> str:
        if (problem := rate_problem(value)) is not None:
            raise _fail(problem)
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise _fail("must be memory:// or a redis:// / rediss:// URL")
        return value


class NetworkConfig(_Section):
    """The ``network:`` section: everything enforced before a request is authenticated."""

    allowed_hosts: list[HostEntry] | None = None
    trusted_proxies: list[ProxyEntry] = []
    cors: CorsConfig = CorsConfig()
    limits: LimitsConfig = LimitsConfig()
    headers: HeadersConfig = HeadersConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
