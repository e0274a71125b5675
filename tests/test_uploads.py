"""Streaming uploads end to end: real PostgreSQL, local storage, real ffmpeg."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests.conftest import User, leftovers, register_and_login, truncate_all


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs against local disk and a real S3-protocol server."""
    return str(request.param)


async def video_rows(app: web.Application) -> int:
    async with app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM videos"))


async def used_bytes(client: TestClient[Any, Any], user: User) -> int:
    resp = await client.get("/api/v1/me", headers=user.headers)
    return int((await resp.json())["used_bytes"])


async def test_put_upload_stores_probes_and_counts(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, settings: Settings
) -> None:
    body = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/my clip.mp4", data=body, headers=user.headers)
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    assert video.pop("jobs") == []  # none asked for with ?process=
    assert video["filename"] == "my clip.mp4"
    assert video["size"] == len(body)
    assert video["sha256"] == hashlib.sha256(body).hexdigest()
    assert video["content_type"] == "video/mp4"
    assert video["status"] == "ready"
    meta = video["metadata"]
    assert (meta["width"], meta["height"]) == (320, 240)
    assert meta["duration"] == pytest.approx(2.0, abs=0.2)
    assert meta["video_codec"] == "h264"

    resp = await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert (await resp.json()) == video
    assert await used_bytes(client, user) == len(body)
    stored = leftovers(client.app)
    assert len(stored) == 1 and stored[0].endswith(f"{video['id']}/source")


async def test_multipart_upload(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> None:
    form = aiohttp.FormData()
    form.add_field("file", sample_mp4.read_bytes(), filename="form.mp4")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    assert video["filename"] == "form.mp4"
    assert video["size"] == sample_mp4.stat().st_size


async def test_upload_requires_auth(client: TestClient[Any, Any], sample_mp4: Path) -> None:
    resp = await client.put("/api/v1/uploads/x.mp4", data=sample_mp4.read_bytes())
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"just some text that is not a video" * 100,
        b"",
    ],
    ids=["m3u8", "ffconcat", "text", "empty"],
)
async def test_non_media_is_415_and_nothing_stored(
    client: TestClient[Any, Any], user: User, settings: Settings, body: bytes
) -> None:
    resp = await client.put("/api/v1/uploads/evil.mp4", data=body, headers=user.headers)
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    assert leftovers(client.app) == []
    assert await video_rows(client.app) == 0


async def test_undecodable_video_is_422_and_nothing_kept(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, settings: Settings
) -> None:
    truncated = sample_mp4.read_bytes()[:3000]  # a real ftyp box, then nothing usable
    resp = await client.put("/api/v1/uploads/broken.mp4", data=truncated, headers=user.headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "undecodable"
    assert leftovers(client.app) == []
    assert await video_rows(client.app) == 0
    assert await used_bytes(client, user) == 0


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
async def small_limit_client(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[..., Any],
    request: pytest.FixtureRequest,
) -> TestClient[Any, Any]:
    overrides = getattr(request, "param", {})
    app = create_app(make_settings(**overrides))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    await truncate_all(app)
    return client


@pytest.mark.parametrize("small_limit_client", [{"max_upload_bytes": 20_000}], indirect=True)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_over_size_limit_is_413_and_nothing_left(
    small_limit_client: TestClient[Any, Any], sample_mp4: Path, chunked: bool
) -> None:
    client = small_limit_client
    user = await register_and_login(client)
    body = sample_mp4.read_bytes()
    assert len(body) > 20_000
    data: Any = _chunks(body) if chunked else body
    resp = await client.put("/api/v1/uploads/big.mp4", data=data, headers=user.headers)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert leftovers(client.app) == []
    assert await video_rows(client.app) == 0


@pytest.mark.parametrize("small_limit_client", [{"default_quota_bytes": 30_000}], indirect=True)
async def test_over_quota_is_413_mid_stream(
    small_limit_client: TestClient[Any, Any], sample_mp4: Path
) -> None:
    client = small_limit_client
    user = await register_and_login(client)
    resp = await client.put(
        "/api/v1/uploads/q.mp4", data=_chunks(sample_mp4.read_bytes()), headers=user.headers
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "quota_exceeded"
    assert leftovers(client.app) == []
    assert await used_bytes(client, user) == 0


async def test_disconnect_mid_upload_leaves_nothing(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, settings: Settings
) -> None:
    body = sample_mp4.read_bytes()
    _reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            "PUT /api/v1/uploads/cut.mp4 HTTP/1.1\r\n"
            f"Host: {client.host}\r\n"
            f"Authorization: Bearer {user.access_token}\r\n"
            f"Content-Length: {len(body) * 10}\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    # Wait until the server has started streaming this upload, then vanish.
    tracker = client.app[appkeys.UPLOADS].tracker
    for _ in range(200):
        if len(tracker):
            break
        await asyncio.sleep(0.01)
    assert len(tracker) == 1
    writer.transport.abort()
    for _ in range(200):
        if not len(tracker):
            break
        await asyncio.sleep(0.01)
    assert len(tracker) == 0
    assert leftovers(client.app) == []
    assert await video_rows(client.app) == 0


async def test_multipart_errors(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> None:
    resp = await client.post("/api/v1/uploads", json={"file": "x"}, headers=user.headers)
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "expected_multipart"

    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("other", "value")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "missing_file"

    form = aiohttp.FormData()
    form.add_field("file", sample_mp4.read_bytes(), filename="a.mp4")
    form.add_field("after", "late")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_multipart"
    assert await video_rows(client.app) == 0


async def test_unparseable_part_header_is_400_not_500(
    client: TestClient[Any, Any], user: User
) -> None:
    # Found by schemathesis: a control character in a part's field name.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="\xc2\x9e\x11"\r\n\r\n{}\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nx\r\n--b--\r\n'
    )
    headers = {**user.headers, "Content-Type": "multipart/form-data; boundary=b"}
    resp = await client.post("/api/v1/uploads", data=body, headers=headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_multipart"


async def test_filename_is_sanitised(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    resp = await client.put(
        "/api/v1/uploads/..%2F..%2Fetc%2Fpasswd%0D%0AX.mp4",
        data=sample_mp4.read_bytes(),
        headers=user.headers,
    )
    assert resp.status == 201, await resp.text()
    name = (await resp.json())["filename"]
    assert "/" not in name and "\r" not in name and "\n" not in name and not name.startswith(".")
