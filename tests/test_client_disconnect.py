"""A client that hangs up mid-download is a 499 and an info line, not a 500 with a traceback.

Every seek in a browser's player does this, so it must not pollute the 5xx
rate that operators alert on. Served as `run.py` serves (aiohttp's test
server cancels handlers on disconnect, which production does not).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from config.settings import Settings
from server import appkeys
from tests.conftest import User
from tests.edge_helpers import LiveServer, captured_logs, live_server, stored_video

SIZE = 16 * 1024 * 1024
ROUTE = "/api/v1/videos/{id}/content"
RANGES = [
    "",
    "Range: bytes=0-\r\n",
    "Range: bytes=1000000-\r\n",
    "",
    "Range: bytes=-9000000\r\n",
]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """sendfile on local disk; streamed ranged GetObject reads on S3."""
    return str(request.param)


def counts(text: str) -> dict[str, float]:
    """frameflow_http_requests_total of the content route, by status."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"frameflow_http_requests_total\{(.*)\} (\S+)", line)
        if match and f'route="{ROUTE}"' in match.group(1):
            status = re.search(r'status="(\d+)"', match.group(1))
            assert status is not None
            found[status.group(1)] = float(match.group(2))
    return found


async def read_part_and_hang_up(
    server: LiveServer, user: User, path: str, extra: str, abort: bool
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\n{extra}\r\n"
        ).encode()
    )
    await writer.drain()
    received = 0
    while received < 100_000:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, "the server closed first"
        received += len(chunk)
    if abort:
        writer.transport.abort()  # RST, like a killed curl
    else:
        writer.close()  # FIN, like `curl | head -c 100000`


async def test_hanging_up_mid_download_is_499_without_traceback(settings: Settings) -> None:
    async with live_server(settings) as server:
        user = await server.user()
        video = await stored_video(server.app, user.id, b"\xab" * SIZE)
        path = f"/api/v1/videos/{video}/content"
        metrics = server.app[appkeys.METRICS]
        with captured_logs() as logs:
            for i, extra in enumerate(RANGES):
                await read_part_and_hang_up(server, user, path, extra, abort=i % 2 == 0)
            seen: dict[str, Any] = {}
            for _ in range(500):
                seen = counts(metrics.render().decode())
                if sum(seen.values()) >= len(RANGES):
                    break
                await asyncio.sleep(0.02)
        assert seen == {"499": float(len(RANGES))}, seen
        assert logs.tracebacks() == []
        assert logs.errors() == []
        closed = logs.named("client_closed_request")
        assert len(closed) == len(RANGES)
        assert all(e["log_level"] == "info" for e in closed)
        access = [e for e in logs.named("request") if e["path"] == path]
        assert [e["status"] for e in access] == [499] * len(RANGES)
        # The same file is served whole to the next client.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.access_token}\r\n"
            "Range: bytes=0-9\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 206") and answer.endswith(b"\xab" * 10)
