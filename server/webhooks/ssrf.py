"""Which webhook URLs and addresses Frameflow may send to (no SSRF).

A webhook makes this server send requests on a user's behalf, so targets
inside the network are refused: loopback, private, link-local (169.254.x,
where cloud metadata lives), CGNAT, unique-local, multicast, reserved and
unspecified addresses, and the same hidden in IPv4-mapped / NAT64 / 6to4
IPv6 forms. The check runs on the URL at registration (resolving the host)
and again at delivery on the addresses actually connected to — the
delivery's resolver (`GuardedResolver`) hands the connector only addresses
that passed, so DNS rebinding between check and connect cannot swap one in.
`FRAMEFLOW_WEBHOOK_ALLOWED_HOSTS` admits named internal hosts on purpose.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Collection
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 2048
# RFC 1035 §2.3.4 (as sent on the wire, after IDNA): 63 per label, 253 in all.
MAX_LABEL_CHARS = 63
MAX_HOST_CHARS = 253
# Letters, digits and hyphens (RFC 1123), plus the underscore that internal
# names (containers, services) often carry; no hyphen at either end.
_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
# A bracketed IPv6 host may be followed by a port and nothing else.
_BRACKETED_NETLOC_RE = re.compile(r"\[[^\[\]]+\](?::[0-9]*)?")
# Cloud metadata endpoints, named so that the refusal says what they are.
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL, or an address its host resolves to, must not be sent to."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` may not be a webhook target, or None when it may (pure)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return None if problem is None else f"{problem} (inside {ip})"
    if ip in METADATA:
        return f"{ip} is a cloud metadata address"
    for test, what in (
        (ip.is_unspecified, "an unspecified"),
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.is_multicast, "a multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a carrier-grade NAT"),
        (ip.is_private, "a private"),
        (ip.is_reserved, "a reserved"),
        (not ip.is_global, "a non-public"),
    ):
        if test:
            return f"{ip} is {what} address"
    return None


def allowed_hosts(setting: str) -> frozenset[str]:
    """`FRAMEFLOW_WEBHOOK_ALLOWED_HOSTS` as normalised host names / addresses."""
    return frozenset(_norm_host(h) for h in setting.split(",") if h.strip())


def _norm_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def parse_url(url: str) -> SplitResult:
    """The URL's parts if its form is acceptable (pure; addresses come later)."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeURL("the URL is too long")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeURL("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)  # raises on a malformed `[...]` host
    except ValueError:
        raise UnsafeURL("the URL's host is not valid") from None
    if parts.scheme not in {"http", "https"}:
        raise UnsafeURL("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("credentials in the URL are not allowed; sign with the secret instead")
    if "[" in parts.netloc and not _BRACKETED_NETLOC_RE.fullmatch(parts.netloc):
        raise UnsafeURL("the URL's host is not valid")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise UnsafeURL("the URL's port is not valid") from None
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if parts.fragment:
        raise UnsafeURL("the URL must not have a fragment")
    if literal_ip(parts.hostname) is None:
        check_host_name(parts.hostname)
    return parts


def check_host_name(host: str) -> None:
    """Raise UnsafeURL unless `host` is a well-formed DNS name (pure).

    Checked before any lookup: the resolver would otherwise fail inside its
    IDNA encoder (`a..b`, a 64-character label) or send junk to DNS.
    """
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeURL(f"the host name {host[:80]!r} is not valid") from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > MAX_HOST_CHARS or not all(_LABEL_RE.fullmatch(x) for x in labels):
        raise UnsafeURL(f"the host name {host[:80]!r} is not valid")


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(host: str, ip: IPAddress, allowed: Collection[str]) -> None:
    """Raise UnsafeURL unless `ip` (what `host` resolved to) may be sent to."""
    if _norm_host(host) in allowed or str(ip) in allowed:
        return
    problem = address_problem(ip)
    if problem is not None:
        raise UnsafeURL(f"{host} resolves to a refused address: {problem}")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (A and AAAA)."""
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"the host {host} does not resolve ({exc.strerror})") from None
    except UnicodeError:  # a name registered before check_host_name existed
        raise UnsafeURL(f"the host name {host[:80]!r} is not valid") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allowed: Collection[str]) -> SplitResult:
    """Registration: the URL's form, and every address its host resolves to
    (one bad address is enough to refuse: a resolver may pick any)."""
    parts = parse_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for ip in await resolve(host, port):
        check_address(host, ip, allowed)
    return parts


class GuardedResolver(AbstractResolver):
    """aiohttp resolver for deliveries: resolves, then returns only the
    addresses that pass `check_address` — the connector connects to exactly
    those. Host header and TLS SNI keep the name, as with any resolver."""

    def __init__(self, allowed: Collection[str]) -> None:
        self.allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for ip in await resolve(host, port):
            check_address(host, ip, self.allowed)
            results.append(
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None
