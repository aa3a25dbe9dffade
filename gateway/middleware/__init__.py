"""The gateway's outer ring: network protections that hold before anyone is authenticated.

``install_network_middleware`` validates the effective configuration (policy file ``network:`` section
with CLI overrides on top), refuses insecure or incomplete settings with every problem listed, and
installs the chain, outermost first:

    proxies -> host allowlist -> size limits -> CORS -> cross-site writes -> security headers
    -> rate limit by client address -> (authentication and everything after it) -> app
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette

from gateway.middleware.cors import CorsMiddleware, CorsPolicy
from gateway.middleware.cross_site import CrossSiteWriteMiddleware
from gateway.middleware.headers import HeaderPolicy, SecurityHeadersMiddleware
from gateway.middleware.hosts import HostAllowlist, HostAllowlistMiddleware
from gateway.middleware.limits import SizeLimitMiddleware, SizeLimits
from gateway.middleware.proxies import TrustedProxyMiddleware
from gateway.middleware.ratelimit import RateLimitMiddleware, RequestRateLimiter, redact_url
from gateway.settings import Settings, SettingsError
from policies.file.network import (
    LOOPBACK_HOSTS,
    NetworkConfig,
    host_entry_problem,
    origin_entry_problem,
    proxy_entry_problem,
)

log = logging.getLogger("mlgate.network")


def as_network_config(section: Any) -> NetworkConfig:
    """The ``network:`` section as a model (the policy loader may still hand over a plain dict)."""
    if isinstance(section, NetworkConfig):
        return section
    try:
        return NetworkConfig.model_validate(section or {})
    except ValidationError as exc:
        raise SettingsError([
            f"network.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else f"network: {e['msg']}"
            for e in exc.errors()
        ]) from exc


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _allowed_hosts(settings: Settings, config: NetworkConfig, problems: list[str]) -> list[str]:
    if settings.allowed_hosts is not None:
        problems += [f"--allowed-hosts: entry {i}: {p}" for i, h in enumerate(settings.allowed_hosts)
                     if (p := host_entry_problem(h)) is not None]
        hosts = list(settings.allowed_hosts)
    elif config.allowed_hosts is not None:
        hosts = list(config.allowed_hosts)
    elif is_loopback(settings.host):
        hosts = [*LOOPBACK_HOSTS, settings.host]
    else:
        problems.append(
            f"--allowed-hosts / network.allowed_hosts: required when binding to {settings.host!r} (not "
            "loopback); list the host names clients use to reach this server, e.g. "
            "--allowed-hosts mlflow.example.org"
        )
        return []
    if not hosts:
        problems.append("--allowed-hosts / network.allowed_hosts: the list is empty, so every request would "
                        "be refused")
    return hosts


def _cors_origins(settings: Settings, config: NetworkConfig, problems: list[str]) -> list[str]:
    if settings.cors_allowed_origins is None:
        return list(config.cors.allowed_origins)
    credentials = config.cors.allow_credentials
    problems += [f"--cors-allowed-origins: entry {i}: {p}" for i, o in enumerate(settings.cors_allowed_origins)
                 if (p := origin_entry_problem(o, credentials)) is not None]
    return list(settings.cors_allowed_origins)


def _trusted_proxies(settings: Settings, config: NetworkConfig, problems: list[str]) -> list[str]:
    if settings.trusted_proxies is None:
        return list(config.trusted_proxies)
    problems += [f"--trusted-proxies: entry {i}: {p}" for i, n in enumerate(settings.trusted_proxies)
                 if (p := proxy_entry_problem(n)) is not None]
    return list(settings.trusted_proxies)


def _storage(settings: Settings, config: NetworkConfig, problems: list[str]) -> str:
    if settings.redis_url is None:
        return config.rate_limit.storage
    if not settings.redis_url.startswith(("redis://", "rediss://")):
        problems.append(f"--redis-url: {redact_url(settings.redis_url)!r} is not a redis:// or rediss:// URL")
    return settings.redis_url


def _check_redis(url: str, source: str, problems: list[str]) -> None:
    # Fail at startup, not on the first request: a shared budget that silently is not shared is worse.
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        problems.append(f"{source}: cannot reach {redact_url(url)} ({type(exc).__name__}: {exc})")
    finally:
        client.close()


@dataclass(frozen=True)
class NetworkPlan:
    """The validated network configuration (policy ``network:`` with the CLI's overrides on top)."""

    config: NetworkConfig
    hosts: tuple[str, ...]
    origins: tuple[str, ...]
    proxies: tuple[str, ...]
    storage: str


def plan_network(settings: Settings, network_config: Any) -> tuple[NetworkPlan | None, list[str]]:
    """The network plan, or None and every problem with it; creates nothing (a Redis ping at most)."""
    try:
        config = as_network_config(network_config)
    except SettingsError as exc:
        return None, list(exc.problems)
    problems: list[str] = []
    hosts = _allowed_hosts(settings, config, problems)
    origins = _cors_origins(settings, config, problems)
    proxies = _trusted_proxies(settings, config, problems)
    storage = _storage(settings, config, problems)
    if not problems and config.rate_limit.enabled and storage.startswith(("redis://", "rediss://")):
        _check_redis(storage, "--redis-url" if settings.redis_url else "network.rate_limit.storage", problems)
    if problems:
        return None, problems
    return NetworkPlan(config, tuple(hosts), tuple(origins), tuple(proxies), storage), []


def install_network_middleware(app: Starlette, settings: Settings, network_config: Any,
                               plan: NetworkPlan | None = None) -> None:
    """Install the outer middleware ring from ``plan`` (validated here when not given; raises SettingsError).

    Call this after every inner middleware (authentication, audit) has been added: Starlette runs the
    most recently added middleware first, and this ring must run before all of them.
    """
    if plan is None:
        plan, problems = plan_network(settings, network_config)
        if problems:
            raise SettingsError(problems)
    config, hosts, origins, proxies, storage = plan.config, list(plan.hosts), list(plan.origins), \
        list(plan.proxies), plan.storage
    rl = config.rate_limit

    cors = CorsPolicy.build(origins, allow_credentials=config.cors.allow_credentials,
                            methods=config.cors.allowed_methods, headers=config.cors.allowed_headers,
                            expose_headers=config.cors.expose_headers, max_age=config.cors.max_age)
    limits = config.limits
    headers = config.headers
    limiter = RequestRateLimiter(enabled=rl.enabled, storage_uri=storage, strategy=rl.strategy,
                                 per_client=rl.per_client, anonymous=rl.anonymous,
                                 per_principal=rl.per_principal,
                                 sensitive=rl.sensitive, sensitive_admin=rl.sensitive_admin,
                                 sensitive_paths=rl.sensitive_paths,
                                 namespace=rl.namespace)
    app.state.network = config
    app.state.rate_limiter = limiter

    # add_middleware puts each new layer outside the previous ones: add innermost first.
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware, policy=HeaderPolicy.build(
        frame_ancestors=headers.frame_ancestors, referrer_policy=headers.referrer_policy,
        content_security_policy=headers.content_security_policy, hsts_max_age=headers.hsts_max_age,
        hsts_include_subdomains=headers.hsts_include_subdomains))
    app.add_middleware(CrossSiteWriteMiddleware, allowed_origins=cors.origins)
    app.add_middleware(CorsMiddleware, policy=cors)
    app.add_middleware(SizeLimitMiddleware, limits=SizeLimits(
        max_body_bytes=limits.max_body_bytes, max_artifact_bytes=limits.max_artifact_bytes,
        max_query_bytes=limits.max_query_bytes, max_header_bytes=limits.max_header_bytes,
        max_header_count=limits.max_header_count))
    app.add_middleware(HostAllowlistMiddleware, allowlist=HostAllowlist(hosts))
    app.add_middleware(TrustedProxyMiddleware, trusted_networks=tuple(
        ipaddress.ip_network(n, strict=True) for n in proxies))

    log.info("network protection: allowed_hosts=%s cors_origins=%s trusted_proxies=%s", hosts, origins, proxies)
    log.info("network limits: body=%d artifact=%d query=%d header_bytes=%d header_count=%d json_depth=%d",
             limits.max_body_bytes, limits.max_artifact_bytes, limits.max_query_bytes, limits.max_header_bytes,
             limits.max_header_count, limits.max_json_depth)
    log.info("rate limiter: %s", limiter.effective_state())
