"""tus 1.0 resumable uploads over HTTP: protocol, extensions, limits, both storage backends."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from server import appkeys
from tests.conftest import User, leftovers

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def create(client: TestClient[Any, Any], user: User, length: int | None, **pairs: str) -> str:
    headers = {**user.headers, **TUS, "Upload-Metadata": meta(filename="clip.mp4", **pairs)}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    resp = await client.post("/api/v1/tus/", headers=headers)
    assert resp.status == 201, await resp.text()
    return path_of(resp.headers["Location"])


def path_of(url: str) -> str:
    return URL(url).path


async def patch(
    client: TestClient[Any, Any], user: User, url: str, offset: int, body: bytes, **extra: str
) -> Any:
    headers = {**user.headers, **TUS, **OCTETS, "Upload-Offset": str(offset), **extra}
    return await client.patch(url, data=body, headers=headers)


async def head(client: TestClient[Any, Any], user: User, url: str) -> Any:
    return await client.head(url, headers={**user.headers, **TUS})


async def used_bytes(app: web.Application, user: User) -> int:
    async with app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT used_bytes FROM users WHERE id = $1::uuid", user.id))


async def test_chunked_upload_becomes_a_video(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    assert await used_bytes(client.app, user) == len(data)  # held from creation
    resp = await head(client, user, url)
    assert resp.status == 200
    assert resp.headers["Upload-Offset"] == "0"
    assert resp.headers["Upload-Length"] == str(len(data))
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Upload-Expires" in resp.headers
    offset = 0
    for size in (10_000, 25_000, len(data)):
        chunk = data[offset : offset + size]
        resp = await patch(client, user, url, offset, chunk)
        assert resp.status == 204, await resp.text()
        offset += len(chunk)
        assert resp.headers["Upload-Offset"] == str(offset)
        if offset == len(data):
            break
    video_id = resp.headers["Frameflow-Video-Id"]
    assert resp.headers["Frameflow-Video-Location"].endswith(f"/api/v1/videos/{video_id}")
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    video = await resp.json()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert video["filename"] == "clip.mp4"
    assert video["size"] == len(data)
    assert await used_bytes(client.app, user) == len(data)  # the hold became the video's
    resp = await head(client, user, url)
    assert resp.headers["Frameflow-Video-Id"] == video_id
    assert sorted(leftovers(client.app)) == [f"objects/videos/{user.id}/{video_id}/source"] or (
        client.app[appkeys.SETTINGS].storage == "s3"
        and leftovers(client.app) == [f"videos/{user.id}/{video_id}/source"]
    )
