"""The policy file's ``network:`` section: secure defaults, and every problem listed with its key."""

from __future__ import annotations

import pytest

from policies.file import PolicyFileError, load_policy_text
from policies.file.network import NetworkConfig, normalize_origin, parse_size


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyFileError) as info:
        load_policy_text(text, environ={})
    return info.value.problems


def test_defaults_are_the_secure_ones():
    config = load_policy_text("network: {}\n", environ={}).network
    assert config == NetworkConfig()
    assert config.allowed_hosts is None  # loopback names, or refuse to start when bound elsewhere
    assert config.trusted_proxies == []
    assert config.cors.allowed_origins == []
    assert config.limits.max_body_bytes == 16 * 1024 * 1024
    assert config.limits.max_json_depth == 64
    assert config.headers.frame_ancestors == "none"
    assert config.rate_limit.enabled is True
    assert config.rate_limit.storage == "memory://"
    # Sized for a 64-job sweep from one host (docs/network.md); requests that end with no identity keep 6,000.
    assert config.rate_limit.per_client == "60000/minute"
    assert config.rate_limit.anonymous == "6000/minute"
    assert config.rate_limit.per_principal == "60000/minute"
    assert config.rate_limit.sensitive == "30/minute"


def test_a_full_section_loads():
    config = load_policy_text("""
network:
  allowed_hosts: [mlflow.example.org, "*.corp.example", 10.0.0.5, "[2001:db8::1]"]
  trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.0.2.1]
  cors:
    allowed_origins: ["https://ui.example.org", "http://localhost:3000"]
    max_age: 60
  limits: {max_body_bytes: 32 MiB, max_artifact_bytes: 10 GiB, max_json_depth: 32}
  headers: {frame_ancestors: self, referrer_policy: strict-origin-when-cross-origin}
  rate_limit:
    storage: redis://127.0.0.1:6379/2
    strategy: sliding-window-counter
    per_client: 100/second; 20000/hour
    sensitive: 10 per 2 minutes
""", environ={}).network
    assert config.limits.max_body_bytes == 32 * 1024 * 1024
    assert config.limits.max_artifact_bytes == 10 * 1024**3
    assert config.rate_limit.per_client == "100/second; 20000/hour"


def test_every_problem_is_listed_with_its_key():
    problems = problems_of("""
network:
  allowed_hosts: ["10.*", ok.example.org, "*", "*.com", "host:5000"]
  trusted_proxies: [10.0.0.1/8, proxy.internal]
  cors:
    allowed_origins: ["null", "https://*.example.org", "https://ui.example.org/app"]
    allowed_methods: [get]
    allowed_headers: ["*"]
  limits: {max_body_bytes: lots, max_json_depth: 1000}
  headers: {frame_ancestors: anyone, content_security_policy: "default-src *; frame-ancestors *"}
  rate_limit: {per_client: unlimited, storage: "mongodb://db", sensitive_paths: [login], surprise: 1}
""")
    assert problems == [
        "network.allowed_hosts[0]: '10.*': wildcards are only allowed as a leading '*.' on a domain; string "
        "prefixes such as '10.*' also match attacker names like 10.rebind.evil.example",
        "network.allowed_hosts[2]: '*' would accept any Host header and re-open DNS rebinding; list the names "
        "clients use",
        "network.allowed_hosts[3]: '*.com' is too broad: a wildcard needs a domain of at least two labels "
        "(*.example.org)",
        "network.allowed_hosts[4]: 'host:5000' is not a host name or IP address (give names without a port, "
        "scheme or path)",
        "network.trusted_proxies[0]: '10.0.0.1/8' is not an IP address or network in CIDR notation "
        "(10.0.0.1/8 has host bits set)",
        "network.trusted_proxies[1]: 'proxy.internal' is not an IP address or network in CIDR notation "
        "('proxy.internal' does not appear to be an IPv4 or IPv6 network)",
        "network.cors.allowed_origins[0]: 'null' is the origin of sandboxed frames and local files, never a "
        "trusted site",
        "network.cors.allowed_origins[1]: 'https://*.example.org': only exact origins are allowed "
        "(scheme://host[:port]), no wildcards",
        "network.cors.allowed_origins[2]: 'https://ui.example.org/app' is not an origin of the form "
        "http(s)://host[:port] without a path",
        "network.cors.allowed_methods[0]: 'get' is not one of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']",
        "network.cors.allowed_headers[0]: '*' is not a header name (wildcards are not accepted)",
        "network.limits.max_body_bytes: 'lots' is not a size; write bytes or e.g. '16 MiB', '5 GiB'",
        "network.limits.max_json_depth: Input should be less than or equal to 500",
        "network.headers.frame_ancestors: Input should be 'none' or 'self'",
        "network.headers.content_security_policy: leave out frame-ancestors: it is set from "
        "network.headers.frame_ancestors",
        "network.rate_limit.storage: must be memory:// or a redis:// / rediss:// URL",
        "network.rate_limit.per_client: 'unlimited' is not a rate; write e.g. '6000/minute' or '100 per 2 "
        "hours' (several joined with ';')",
        "network.rate_limit.sensitive_paths[0]: 'login' is not a path prefix starting with '/'",
        "network.rate_limit.surprise: is not a known key",
    ]


def test_credentialed_wildcard_origin_is_refused_but_plain_wildcard_is_not():
    (problem,) = problems_of("network:\n  cors: {allowed_origins: ['*']}\n")
    assert problem.startswith("network.cors: allowed_origins: '*' together with allow_credentials")
    config = load_policy_text("network:\n  cors: {allowed_origins: ['*'], allow_credentials: false}\n",
                              environ={}).network
    assert config.cors.allowed_origins == ["*"]


@pytest.mark.parametrize(("text", "expected"), [
    ("https://App.Example.org", "https://app.example.org"),
    ("https://app.example.org:443", "https://app.example.org"),
    ("http://app.example.org:80", "http://app.example.org"),
    ("http://app.example.org:8080", "http://app.example.org:8080"),
    ("http://[::1]:5000", "http://[::1]:5000"),
    ("null", None), ("https://app.example.org/", None), ("ftp://app.example.org", None),
    ("https://user@app.example.org", None), ("https://app.example.org:99999", None), ("", None),
])
def test_origin_normalization(text, expected):
    assert normalize_origin(text) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (1024, 1024), ("2048", 2048), ("16 MiB", 16 * 1024**2), ("1kb", 1000), ("5GiB", 5 * 1024**3),
])
def test_sizes(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["16 MB/s", "-1", "1.5 GiB", True])
def test_bad_sizes(value):
    with pytest.raises(ValueError):
        parse_size(value)
