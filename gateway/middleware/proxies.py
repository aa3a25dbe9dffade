"""Trusted proxies: the one place that decides the client's address, scheme and host.

``X-Forwarded-For``/``-Proto``/``-Host`` are honoured only when the TCP peer is inside a configured
network; from anyone else they are attacker-controlled text. Downstream layers (host allowlist, rate
limits, audit) read the result from ``scope["state"]["client_ip"]``, ``scope["scheme"]`` and the Host
header, and the forwarding headers are removed so no later layer can be fooled into parsing them again.
"""

from __future__ import annotations

import ipaddress
import re

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
# A Host value as RFC 9110 section 7.2 allows it: a name or bracketed IPv6 literal, optional port.
_HOST_VALUE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")


def parse_address(text: str) -> Address | None:
    """The IP address in ``text`` (IPv4-mapped IPv6 is unwrapped), or None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxyMiddleware:
    """Resolve the real client from forwarding headers, trusting only configured proxy networks."""

    def __init__(self, app: ASGIApp, trusted_networks: tuple[Network, ...] = ()):
        self.app = app
        self.trusted_networks = trusted_networks

    def _trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted_networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self._resolve(scope)
        await self.app(scope, receive, send)

    def _resolve(self, scope: Scope) -> None:
        peer_host = (scope.get("client") or ("", 0))[0]
        state = scope.setdefault("state", {})
        state["peer_ip"] = peer_host
        client_ip = peer_host
        forwarded: dict[bytes, list[str]] = {}
        kept = []
        for name, value in scope["headers"]:
            if name in _FORWARDED:
                forwarded.setdefault(name, []).append(value.decode("latin-1"))
            else:
                kept.append((name, value))
        if forwarded:
            scope["headers"] = kept
        if forwarded and self._trusted(parse_address(peer_host)):
            client_ip = self._client_from_chain(peer_host, forwarded.get(b"x-forwarded-for", []))
            self._apply_proto(scope, forwarded.get(b"x-forwarded-proto", []))
            self._apply_host(scope, forwarded.get(b"x-forwarded-host", []))
        if client_ip != peer_host:
            scope["client"] = (client_ip, 0)
        state["client_ip"] = client_ip

    def _client_from_chain(self, peer: str, values: list[str]) -> str:
        # Each proxy appends the address it received the request from, so the chain is read from the
        # right: skip our own proxies, and the first address we do not control is the client. Anything
        # further left was written by that client and proves nothing.
        client = peer
        for entry in reversed(",".join(values).split(",")):
            address = parse_address(entry)
            if address is None:
                break
            client = str(address)
            if not self._trusted(address):
                break
        return client

    @staticmethod
    def _apply_proto(scope: Scope, values: list[str]) -> None:
        # The nearest trusted proxy writes the last value; it is the one that saw the client's scheme.
        proto = ",".join(values).split(",")[-1].strip().lower() if values else ""
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if proto == "https" else "ws"
            else:
                scope["scheme"] = proto

    @staticmethod
    def _apply_host(scope: Scope, values: list[str]) -> None:
        host = ",".join(values).split(",")[-1].strip() if values else ""
        if not _HOST_VALUE.match(host):
            return
        headers = [(n, v) for n, v in scope["headers"] if n != b"host"]
        headers.append((b"host", host.encode("latin-1")))
        scope["headers"] = headers
