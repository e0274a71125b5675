"""Failure drill: the S3 server (SeaweedFS, an instance of this test's own) restarts
while an upload is streaming into it. The upload fails cleanly and soon (a JSON 503,
no video row), the sweep leaves no multipart upload or orphan object behind, and new
uploads work once the server is back — without restarting Frameflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests.conftest import register_and_login, truncate_all
from tests.restartable_s3 import RestartableSeaweedFS
from tests.s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, s3_settings
from tests.test_cleanup import sweep

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[RestartableSeaweedFS]:
    server = RestartableSeaweedFS(tmp_path / "weed")
    server.start()
    yield server
    server.kill()


def multipart_uploads(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    try:
        return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    finally:
        client.close()


async def test_s3_restarted_during_an_upload(
    weed: RestartableSeaweedFS,
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[..., Any],
    sample_mp4: Path,
) -> None:
    settings = make_settings(**s3_settings(weed.endpoint, s3_part_size=PART))
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    app = client.app
    await truncate_all(app)
    user = await register_and_login(client)
    head = sample_mp4.read_bytes()
    total = 3 * PART
    first_part_sent = asyncio.Event()
    server_down = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield head
        sent = len(head)
        while sent < total:
            chunk = b"\0" * min(MiB, total - sent)
            yield chunk
            sent += len(chunk)
            if sent > PART + MiB and not first_part_sent.is_set():
                first_part_sent.set()
                await server_down.wait()  # the rest goes to a server that is gone

    async def stop_when_a_part_is_up() -> None:
        await first_part_sent.wait()
        await asyncio.sleep(0.3)  # the first part is on its way or stored
        await asyncio.to_thread(weed.kill)  # a crash; a restart follows
        server_down.set()

    stopper = asyncio.create_task(stop_when_a_part_is_up())
    # A hang guard, not a speed check: botocore retries for ~20 s, then the error
    # comes (timed assertions have no place on a shared machine).
    async with asyncio.timeout(150):
        resp = await client.put(
            "/api/v1/uploads/big.mp4",
            data=body(),
            headers={**user.headers, "Content-Length": str(total)},
        )
    await stopper
    assert resp.status == 503, await resp.text()
    assert (await resp.json())["error"]["code"] == "storage_unavailable"
    async with app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 0

    await asyncio.to_thread(weed.start)
    report = await sweep(app, stale_after=timedelta(0))
    assert report.errors == [], report.errors
    assert multipart_uploads(weed.endpoint, settings.s3_bucket) == []
    assert [o async for o in app[appkeys.STORAGE].list_prefix("videos/")] == []

    # New uploads work against the restarted server, through the same client and pool.
    resp = await client.put("/api/v1/uploads/a.mp4", data=head, headers=user.headers)
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    resp = await client.get(f"/api/v1/videos/{video_id}/content", headers=user.headers)
    assert resp.status == 200
    assert await resp.read() == head
