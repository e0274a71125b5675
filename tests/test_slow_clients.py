"""Slow and greedy clients (slowloris): header deadline, per-address cap, health stays fast.

Served the way `run.py` serves (server/listener.py), over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from config.settings import Settings
from server import appkeys
from tests.edge_helpers import LiveServer, live_server, status_of

HEADER_TIMEOUT = 3.0
CAP = 6


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        header_timeout_seconds=HEADER_TIMEOUT,
        keepalive_timeout_seconds=6.0,
        body_idle_timeout_seconds=5.0,
        max_connections_per_ip=CAP,
    )


async def health_latency(server: LiveServer) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert status_of(answer) == 200, answer
    return time.monotonic() - started


async def trickle(server: LiveServer, interval: float, limit: float) -> tuple[float, bytes]:
    """Send a request head a byte per `interval` until the server answers or hangs up.

    Returns the seconds that took and what the server sent.
    """
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    answer = b""
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(reader.read(1024), interval)
            if reader.at_eof() or time.monotonic() - started > limit:
                break
    except ConnectionError:
        pass  # the server closed while we were still writing
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def test_a_trickled_header_is_cut_off_and_health_stays_fast(settings: Settings) -> None:
    async with live_server(settings) as server:
        slow = [asyncio.create_task(trickle(server, 1.0, 20)) for _ in range(CAP - 2)]
        latencies = []
        while not all(t.done() for t in slow):
            latencies.append(await health_latency(server))
            await asyncio.sleep(0.25)
        results = [t.result() for t in slow]
        for elapsed, answer in results:
            assert elapsed < HEADER_TIMEOUT + 2, elapsed
            assert status_of(answer) == 408, answer
        assert max(latencies) < 0.5, latencies
        dropped = server.app[appkeys.METRICS].connections_dropped.labels("header_timeout")
        assert dropped._value.get() == len(slow)


async def test_a_complete_head_with_a_slow_body_is_not_cut_off(settings: Settings) -> None:
    async with live_server(settings) as server:
        user = await server.user()
        body = b'{"email": "%s", "password": "%s"}' % (user.email.encode(), user.password.encode())
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        # The body over twice the header deadline, each pause under the body's idle deadline.
        for piece in (body[:10], body[10:20], body[20:]):
            await asyncio.sleep(HEADER_TIMEOUT * 0.8)
            writer.write(piece)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert status_of(answer) == 200, answer


async def test_an_idle_keep_alive_connection_outlives_the_header_deadline(
    settings: Settings,
) -> None:
    async with live_server(settings) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        for _ in range(2):
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
            assert status_of(answer) == 200, answer
            await asyncio.sleep(HEADER_TIMEOUT + 1)  # idle, not slow: no deadline runs
        writer.close()


async def open_idle(server: LiveServer, count: int) -> list[Any]:
    conns = [await asyncio.open_connection(server.host, server.port) for _ in range(count)]
    await asyncio.sleep(0.1)  # let the server accept them all
    return conns


async def test_connections_over_the_per_address_cap_are_refused(settings: Settings) -> None:
    async with live_server(settings) as server:
        held = await open_idle(server, CAP)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert status_of(answer) == 503, answer
        dropped = server.app[appkeys.METRICS].connections_dropped.labels("too_many_connections")
        assert dropped._value.get() == 1
        # One goes away: a new connection is served again.
        held.pop()[1].close()
        await asyncio.sleep(0.2)
        assert await health_latency(server) < 0.5
        for _, held_writer in held:
            held_writer.close()


async def test_trusted_proxies_are_exempt_from_the_cap(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_connections_per_ip=CAP, trusted_proxies="127.0.0.1")
    async with live_server(settings) as server:
        held = await open_idle(server, CAP + 2)
        assert await health_latency(server) < 0.5
        for _, held_writer in held:
            held_writer.close()
