"""Listen for HTTP connections, with deadlines and caps for slow or greedy clients.

aiohttp's server bounds neither how long a request's headers may take nor how
many connections one address holds: a socket trickling a header byte a second
stays open for the keep-alive timeout (3,630 s by default), holding a
descriptor. `run.py` serves through `listening()`, which puts a thin
`GuardedProtocol` in front of each aiohttp connection:

- header deadline: from the first byte of a request until the request reaches
  the application (its head is complete), at most `header_timeout_seconds`;
  past that the client gets a bare 408 and the connection is closed;
- per-address cap: at most `max_connections_per_ip` open connections per
  client address (IPv6: per /64, what one host usually holds); the proxies in
  `trusted_proxies` are exempt, they carry many clients each. A connection over
  the cap gets a bare 503 and is closed before any byte of it is read;
- the idle keep-alive timeout is aiohttp's own, set from
  `keepalive_timeout_seconds`.

Body reads have their own idle deadline (server/request_body.py): it needs to
know when the application waits for bytes, which only the application knows.
The request envelope tells the guard when a request starts and ends
(`request_started`/`request_finished`); under aiohttp's test server there is
no guard and those calls do nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from config.settings import Settings
from server import appkeys
from server.limits.client_ip import Network, parse_networks
from server.logs import get_logger

log = get_logger("frameflow.listener")

_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    max_per_address: int  # 0: no cap
    exempt: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            max_per_address=settings.max_connections_per_ip,
            exempt=parse_networks(settings.trusted_proxies),
        )


def address_key(peer: Any) -> str | None:
    """What the per-address cap counts: the IPv4 address, or the IPv6 /64."""
    if not isinstance(peer, tuple) or not peer:
        return None  # a Unix socket, say: nothing to count
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ConnectionGuard:
    """Shared by every connection of one listener: the per-address counts."""

    def __init__(self, limits: ConnectionLimits, on_drop: Callable[[str], None]) -> None:
        self.limits = limits
        self._on_drop = on_drop
        self._open: Counter[str] = Counter()

    def admit(self, key: str | None) -> bool:
        if key is None:
            return True
        cap = self.limits.max_per_address
        if cap and self._open[key] >= cap and not self._exempt(key):
            return False
        self._open[key] += 1
        return True

    def release(self, key: str | None) -> None:
        if key is not None:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def open_connections(self, key: str) -> int:
        return self._open[key]

    def dropped(self, reason: str, key: str | None) -> None:
        log.info("connection_dropped", reason=reason, remote=key)
        self._on_drop(reason)

    def _exempt(self, key: str) -> bool:
        network = ipaddress.ip_network(key, strict=False)
        return any(
            network.version == net.version and network.overlaps(net) for net in self.limits.exempt
        )

    def protocol(self, inner: asyncio.Protocol) -> GuardedProtocol:
        return GuardedProtocol(self, inner)


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, and enforces the header deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._key: str | None = None
        self._admitted = False
        self._in_request = False
        self._deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._key = address_key(transport.get_extra_info("peername"))
        if not self._guard.admit(self._key):
            self._guard.dropped("too_many_connections", self._key)
            transport.write(_BUSY_ANSWER)
            transport.close()
            return
        self._admitted = True
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if not self._in_request and self._deadline is None:
            # The first byte of a request head: it must be complete in time.
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._guard.limits.header_timeout, self._too_slow)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._admitted:
            self._admitted = False
            self._guard.release(self._key)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- told by the application -------------------------------------------------

    def request_started(self) -> None:
        self._in_request = True
        self._cancel_deadline()

    def request_finished(self) -> None:
        self._in_request = False

    # --- internals ---------------------------------------------------------------

    def _too_slow(self) -> None:
        self._deadline = None
        transport = self._transport
        if self._in_request or transport is None or transport.is_closing():
            return
        self._guard.dropped("header_timeout", self._key)
        transport.write(_TIMEOUT_ANSWER)
        transport.close()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _guarded(request: web.Request) -> GuardedProtocol | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedProtocol) else None


def request_started(request: web.Request) -> None:
    """The request's head is complete: its connection's header deadline is met."""
    protocol = _guarded(request)
    if protocol is not None:
        protocol.request_started()


def request_finished(request: web.Request) -> None:
    """The next byte on this connection starts a new request head (and deadline)."""
    protocol = _guarded(request)
    if protocol is not None:
        protocol.request_finished()


@asynccontextmanager
async def listening(app: web.Application, settings: Settings) -> AsyncIterator[list[Any]]:
    """Start `app` (its cleanup contexts) and listen; yields the bound addresses.

    Leaving the block stops accepting, lets in-flight requests run for the
    shutdown grace period, then cleans the application up.
    """
    runner = web.AppRunner(
        app,
        access_log=None,  # the request envelope logs each request with its id
        keepalive_timeout=settings.keepalive_timeout_seconds,
        # SIGTERM/SIGINT: in-flight requests may finish for this long, then
        # are cancelled (uploads abort) and the app closes cleanly.
        shutdown_timeout=settings.shutdown_grace_seconds,
    )
    await runner.setup()
    server = runner.server
    assert server is not None
    metrics = app[appkeys.METRICS]
    guard = ConnectionGuard(
        ConnectionLimits.from_settings(settings),
        on_drop=lambda reason: metrics.connections_dropped.labels(reason).inc(),
    )
    loop = asyncio.get_running_loop()
    listener = None
    try:
        listener = await loop.create_server(
            lambda: guard.protocol(server()),
            host=settings.host,
            port=settings.port,
            reuse_address=True,
        )
        yield [sock.getsockname() for sock in listener.sockets]
    finally:
        if listener is not None:
            listener.close()
        await runner.cleanup()


async def serve_until_signalled(app: web.Application, settings: Settings) -> None:
    """`python run.py`: serve until SIGINT or SIGTERM, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with listening(app, settings) as addresses:
            for address in addresses:
                log.info("listening", address=f"http://{address[0]}:{address[1]}")
            await stop.wait()
            log.info("shutting_down", grace_seconds=settings.shutdown_grace_seconds)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with suppress(Exception):
                loop.remove_signal_handler(signum)
