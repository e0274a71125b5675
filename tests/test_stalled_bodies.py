"""Bodies that stall get a 408 after the body idle deadline; a resumable upload keeps
what arrived.

Before, tus PATCH bodies (plain and at a direct-upload URL) and caption bodies were
read without a deadline: a client that stopped sending held its connection (and a
tus upload's lock and a database connection) for as long as the TCP connection lived.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from config.settings import Settings
from tests.conftest import User
from tests.test_direct_uploads import create_direct
from tests.test_jobs_e2e import upload
from tests.test_tus import create, finish, head, open_request, raw_patch

IDLE = 1.0


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(body_idle_timeout_seconds=IDLE)


async def test_a_stalled_patch_gets_408_and_keeps_what_arrived(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    sent = 30_000
    reader, writer = await raw_patch(client, user, url, len(data), data[:sent])
    # Then nothing: the server answers once the idle deadline has passed.
    async with asyncio.timeout(IDLE + 10):
        status_line = await reader.readline()
    assert status_line.split()[1] == b"408", status_line
    writer.close()

    resp = await head(client, user, url)
    assert resp.status == 200
    assert int(resp.headers["Upload-Offset"]) == sent  # every byte that arrived counts
    assert await finish(client, user, url, sent, data) == hashlib.sha256(data).hexdigest()


async def stalled_status(
    client: TestClient[Any, Any], head_lines: list[str], length: int, first: bytes
) -> bytes:
    """Send a request head announcing `length` body bytes, then only `first`; the status
    the server answers with once it gives up waiting."""
    reader, writer = await open_request(client, head_lines, length, first)
    try:
        async with asyncio.timeout(IDLE + 10):
            return (await reader.readline()).split()[1]
    finally:
        writer.close()


async def test_a_stalled_patch_at_a_direct_upload_url_gets_408_and_keeps_what_arrived(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    created = await create_direct(client, user.headers)
    base = created["url"].split(str(client.server.port), 1)[1] + "/tus/"
    resp = await client.post(
        base, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))}
    )
    assert resp.status == 201, await resp.text()
    path = URL(resp.headers["Location"]).path
    status = await stalled_status(
        client,
        [
            f"PATCH {path} HTTP/1.1",
            "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream",
            "Upload-Offset: 0",
        ],
        len(data),
        data[:30_000],
    )
    assert status == b"408"
    resp = await client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert int(resp.headers["Upload-Offset"]) == 30_000


async def test_a_stalled_caption_body_gets_408(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4)
    status = await stalled_status(
        client,
        [
            f"POST /api/v1/videos/{video['id']}/captions?language=en HTTP/1.1",
            f"Authorization: {user.headers['Authorization']}",
            "Content-Type: text/vtt",
        ],
        2000,
        b"WEBVTT\n\n",
    )
    assert status == b"408"
