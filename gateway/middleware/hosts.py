"""Host allowlist against DNS rebinding.

A rebinding attack points an attacker-owned name at the server's address, so the browser sends the
attacker's name in ``Host``. Matching is therefore exact on names (or a ``*.domain`` suffix at a label
boundary) and by value on IP literals; string prefixes such as ``10.*`` would also match
``10.rebind.evil.example``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.middleware.proxies import Address, parse_address
from gateway.middleware.refusal import refuse

# Probes (load balancers, orchestrators) call by IP or an internal name; liveness reveals nothing.
EXEMPT_PATHS = frozenset({"/health", "/ready"})


def split_host(value: str) -> str:
    """The host part of a ``Host`` header value, lower case, without port, brackets or trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value[:-1] if value.endswith(".") else value


class HostAllowlist:
    """A compiled allowlist: exact names, ``*.domain`` suffixes and IP addresses."""

    def __init__(self, entries: Iterable[str]):
        self.names: set[str] = set()
        self.suffixes: tuple[str, ...] = ()
        self.addresses: set[Address] = set()
        suffixes = []
        for entry in entries:
            value = entry.strip().lower().rstrip(".")
            inner = value[1:-1] if value.startswith("[") and value.endswith("]") else value
            address = parse_address(inner)
            if address is not None:
                self.addresses.add(address)
            elif value.startswith("*."):
                suffixes.append(value[1:])  # keep the dot: ".example.org" cannot match "badexample.org"
            else:
                self.names.add(value)
        self.suffixes = tuple(suffixes)

    def allows(self, host_header: str) -> bool:
        """Whether a request with this ``Host`` value may proceed."""
        host = split_host(host_header)
        if not host:
            return False
        try:
            address: Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            return address in self.addresses
        return host in self.names or host.endswith(self.suffixes)


class HostAllowlistMiddleware:
    """Refuse requests whose ``Host`` is not in the allowlist with 400 and an MLflow-style body."""

    # Clients use a handful of Host values; remember each verdict, bounded so random names cannot grow it.
    CACHE_SIZE = 256

    def __init__(self, app: ASGIApp, allowlist: HostAllowlist):
        self.app = app
        self.allowlist = allowlist
        self._verdicts: dict[bytes, bool] = {}

    def _allows(self, value: bytes) -> bool:
        verdict = self._verdicts.get(value)
        if verdict is None:
            verdict = self.allowlist.allows(value.decode("latin-1"))
            if len(self._verdicts) >= self.CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[value] = verdict
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        hosts = [v for n, v in scope["headers"] if n == b"host"]
        # Two Host headers are a request-smuggling signal (RFC 9112 section 3.2): refuse, never pick one.
        if len(hosts) == 1 and self._allows(hosts[0]):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = hosts[0].decode("latin-1")[:100] if len(hosts) == 1 else "(missing or repeated)"
        await refuse(send, 400, "BAD_REQUEST",
                     f"Invalid Host header {shown!r}: it is not in the server's allowed hosts "
                     "(--allowed-hosts or network.allowed_hosts).")
