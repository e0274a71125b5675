"""The address a request came from, for per-IP limits.

`request.remote` is the peer of the TCP connection: behind a reverse proxy
that is the proxy, and every client would share one limit. Peers listed in
FRAMEFLOW_TRUSTED_PROXIES are asked instead: their `X-Forwarded-For` is read
from the right, skipping further trusted proxies, and the first address that
is not one of them is the client. Nobody else's header is believed: a client
could write any address into it and get a fresh limit per request.
"""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from server import appkeys

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_networks(value: str) -> tuple[Network, ...]:
    """`"10.0.0.1, 192.168.0.0/16"` as networks; ValueError on a bad entry."""
    return tuple(
        ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
    )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    parsed = _address(address)
    return parsed is not None and any(parsed in net for net in networks)


def client_ip(request: web.Request) -> str:
    remote = request.remote or "unknown"
    networks = parse_networks(request.app[appkeys.SETTINGS].trusted_proxies)
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if _address(hop) is None:
            break  # garbage: stop at the last address a trusted proxy vouched for
        if not _trusted(hop, networks):
            return hop
        remote = hop
    return remote
