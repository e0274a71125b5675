"""The whole app against SeaweedFS, a real S3 server: what moto cannot show.

The storage behaviour tests (multipart, ranges, aborts, deletes, listing) run
on SeaweedFS from test_storage.py, and the orphan sweep from test_orphans.py;
here are the app-level paths that depend on a real server's multipart
uploads: a client vanishing mid-upload, and the sweep of stale uploads with
real initiation dates (moto dates every upload 2010).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

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


# --- tus on a real S3 server -------------------------------------------------------


def padded_ts(path: Path, size: int) -> Path:
    """A valid MPEG-TS clip of at least `size` bytes: a short clip followed by null
    packets (PID 0x1FFF), which demuxers skip, so it probes as the clip does."""
    from tests.clips import make_clip

    make_clip(path, seconds=1, container="ts")
    null_packet = b"\x47\x1f\xff\x10" + b"\xff" * 184
    missing = max(0, size - path.stat().st_size)
    with path.open("ab") as out:
        out.write(null_packet * (missing // len(null_packet) + 1))
    return path


async def test_tuspy_resumes_across_part_boundaries_after_a_cut(
    client: TestClient[Any, Any], user: User, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """tuspy in 3 MiB PATCHes (each shorter than a part: every PATCH leaves a tail that
    the next one must carry over into a part), cut inside the third body, resumed by a
    new client in 2 MiB checksummed PATCHes: the stored object is the file, byte for
    byte, and nothing else is left in the bucket."""
    from tusclient.client import TusClient
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed

    from tests.tcp_proxy import CuttingProxy

    clip = padded_ts(tmp_path / "big.ts", 2 * PART + 1_500_000)
    data = clip.read_bytes()
    proxy = CuttingProxy(client.server.port or 0)
    await proxy.start()
    try:
        tus = TusClient(f"http://127.0.0.1:{proxy.port}/api/v1/tus/", headers=user.headers)
        first, second = clip.open("rb"), clip.open("rb")
        request.addfinalizer(first.close)
        request.addfinalizer(second.close)
        chunk = 3 * 1024 * 1024
        uploader = tus.uploader(file_stream=first, chunk_size=chunk, metadata={"filename": "b.ts"})
        proxy.cut_at(2 * chunk + 1_000_000)  # inside the third PATCH, past the first part
        with pytest.raises((TusUploadFailed, TusCommunicationError)):
            await asyncio.to_thread(uploader.upload)
        assert proxy.cuts == 1 and uploader.url is not None

        resumed = await asyncio.to_thread(
            tus.uploader,
            file_stream=second,
            url=uploader.url,
            chunk_size=2 * 1024 * 1024,
            retries=3,
            retry_delay=1,
            upload_checksum=True,
        )
        # Kept: the first two PATCHes and what of the third arrived before the cut.
        assert 2 * chunk <= resumed.offset < len(data)
        await asyncio.to_thread(resumed.upload)
    finally:
        await proxy.stop()
    video_id = resumed.request.response_headers["frameflow-video-id"]
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    video = await resp.json()
    expected = hashlib.sha256(data).hexdigest()
    assert (video["size"], video["sha256"]) == (len(data), expected)
    # The object itself, read back from SeaweedFS, not only the hash the server computed.
    resp = await client.get(f"/api/v1/videos/{video_id}/content", headers=user.headers)
    assert resp.status == 200
    assert hashlib.sha256(await resp.read()).hexdigest() == expected
    assert leftovers(client.app) == [f"videos/{user.id}/{video_id}/source"]


async def test_tus_tails_under_a_part_carry_over_on_seaweedfs(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    """Raw PATCHes sized so that tails (< 5 MiB) accumulate, then cross into a part,
    then end in a last part below the minimum; the offset after each is exact."""
    data = padded_ts(tmp_path / "tails.ts", 2 * PART + 300_000).read_bytes()
    tus = {"Tus-Resumable": "1.0.0"}
    resp = await client.post(
        "/api/v1/tus/",
        headers={**user.headers, **tus, "Upload-Length": str(len(data))},
    )
    assert resp.status == 201, await resp.text()
    url = URL(resp.headers["Location"]).path
    cuts = [0, 1_000_000, 3_000_000, PART + 1, PART + 2_000_000, 2 * PART + 10, len(data)]
    for start, end in itertools.pairwise(cuts):
        resp = await client.patch(
            url,
            data=io.BytesIO(data[start:end]),
            headers={
                **user.headers,
                **tus,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(start),
            },
        )
        assert resp.status == 204, await resp.text()
        assert resp.headers["Upload-Offset"] == str(end)
        resp = await client.head(url, headers={**user.headers, **tus})
        assert resp.headers["Upload-Offset"] == str(end)
    video_id = resp.headers["Frameflow-Video-Id"]
    resp = await client.get(f"/api/v1/videos/{video_id}/content", headers=user.headers)
    assert await resp.read() == data
    assert leftovers(client.app) == [f"videos/{user.id}/{video_id}/source"]
