"""A tus PATCH whose body stalls: 408 after the body idle deadline, and what arrived is kept.

Before, a PATCH body was read without a deadline: a client that stopped sending
held its upload's lock and a database connection for as long as the TCP
connection lived.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.conftest import User
from tests.test_tus import create, head, patch, raw_patch

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
    resp = await patch(client, user, url, sent, data[sent:])
    assert resp.status == 204, await resp.text()
    resp = await client.get(
        f"/api/v1/videos/{resp.headers['Frameflow-Video-Id']}", headers=user.headers
    )
    assert (await resp.json())["sha256"] == hashlib.sha256(data).hexdigest()
