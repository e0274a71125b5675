"""The whole app against SeaweedFS, a real S3 server: what moto cannot show.

The storage behaviour tests (multipart, ranges, aborts, deletes, listing) run
on SeaweedFS from test_storage.py, and the orphan sweep from test_orphans.py;
here are the app-level paths that depend on a real server's multipart
uploads: a client vanishing mid-upload, and the sweep of stale uploads with
real initiation dates (moto dates every upload 2010).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import appkeys
from tests.conftest import User, leftovers
from tests.test_cleanup import sweep_with

pytestmark = pytest.mark.seaweedfs

PART = 5 * 1024 * 1024  # make_settings' part size for S3 backends


async def eventually(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll `check` (in a thread: it may call S3 synchronously) until true or timed out."""
    for _ in range(int(seconds / 0.05)):
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def backend() -> str:
    return "seaweedfs"


async def test_client_vanishing_mid_upload_aborts_the_multipart_upload(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    assert app[appkeys.SETTINGS].s3_part_size == PART
    head = sample_mp4.read_bytes()
    _reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            "PUT /api/v1/uploads/cut.mp4 HTTP/1.1\r\n"
            f"Host: {client.host}\r\n"
            f"Authorization: Bearer {user.access_token}\r\n"
            f"Content-Length: {4 * PART}\r\n\r\n"
        ).encode()
        + head
        + b"\0" * (PART + 1024 * 1024 - len(head))  # past the first part
    )
    await writer.drain()
    # The first part is on its way to SeaweedFS once a multipart upload exists.
    assert await eventually(lambda: any(k.startswith("multipart:") for k in leftovers(app)))
    writer.transport.abort()
    tracker = app[appkeys.UPLOADS].tracker
    assert await eventually(lambda: not len(tracker) and not leftovers(app))
    async with app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 0


async def test_sweep_aborts_multipart_uploads_only_once_stale(
    client: TestClient[Any, Any],
) -> None:
    app = client.app
    storage = app[appkeys.STORAGE]
    crashed = await storage.open_writer(f"videos/{uuid.uuid4()}/{uuid.uuid4()}/source")
    await crashed.write(b"p" * (PART + 1))  # a multipart upload with one part sent
    try:
        (upload,) = leftovers(app)
        assert upload.startswith("multipart:")

        def sweep(**kw: Any) -> Any:
            return sweep_with(app, storage, **kw)

        # The default threshold (24 h): SeaweedFS dates the upload now, so it stays.
        report = await sweep()
        assert (report.uploads_aborted, report.errors) == (0, [])
        assert leftovers(app) == [upload]

        await asyncio.sleep(1.1)  # "Initiated" has whole seconds
        report = await sweep(stale_after=timedelta(0))
        assert (report.uploads_aborted, report.errors) == (1, [])
        assert leftovers(app) == []
    finally:
        await crashed.abort()  # copes with its upload being gone
