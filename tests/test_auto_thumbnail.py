"""The `thumbnail` job queued after each upload (`FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD`, on by
default; the shared test settings turn it off): once per upload, not twice when asked for,
never at the cost of the upload (a full quota skips it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests.conftest import register_and_login, truncate_all

Client = TestClient[Any, Any]


def test_on_by_default() -> None:
    assert Settings().thumbnail_after_upload is True


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers_enabled=False, thumbnail_after_upload=True)


async def test_each_upload_gets_one_thumbnail_job(client: Client, sample_mp4: Path) -> None:
    user = await register_and_login(client)
    data = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/a.mp4", data=data, headers=user.headers)
    assert resp.status == 201, await resp.text()
    jobs = (await resp.json())["jobs"]
    assert [(j["operation"], j["status"]) for j in jobs] == [("thumbnail", "queued")]

    resp = await client.put(
        "/api/v1/uploads/b.mp4?process=thumbnail,frames", data=data, headers=user.headers
    )
    assert sorted(j["operation"] for j in (await resp.json())["jobs"]) == ["frames", "thumbnail"]


async def test_a_full_quota_skips_the_thumbnail_not_the_upload(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    sample_mp4: Path,
) -> None:
    size = sample_mp4.stat().st_size
    app = create_app(
        make_settings(
            workers_enabled=False, thumbnail_after_upload=True, default_quota_bytes=size + 100
        )
    )
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client)
    resp = await client.put(
        "/api/v1/uploads/a.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["jobs"] == []
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["used_bytes"] == size


async def test_listed_videos_carry_their_thumbnail_link(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    sample_mp4: Path,
) -> None:
    # Workers on: the grid of the page shows the picture the automatic job made.
    app = create_app(make_settings(thumbnail_after_upload=True))
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client)
    data = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/shown.mp4", data=data, headers=user.headers)
    shown = await resp.json()
    resp = await client.put(
        "/api/v1/uploads/bare.mp4?process=frames", data=data, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    job_id = shown["jobs"][0]["id"]
    async with asyncio.timeout(60):
        while True:
            job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)).json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            await asyncio.sleep(0.2)
    assert job["status"] == "succeeded", job["error"]
    # Delete the other upload's thumbnail job's result: a video with none lists null.
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "DELETE FROM jobs WHERE operation = 'thumbnail' AND video_id <> $1",
            uuid.UUID(shown["id"]),
        )

    for query in ("", "?q=shown"):
        resp = await client.get(f"/api/v1/videos{query}", headers=user.headers)
        assert resp.headers["Cache-Control"] == "no-store"
        items = {v["filename"]: v for v in (await resp.json())["items"]}
        url = items["shown.mp4"]["thumbnail"]
        assert f"/api/v1/jobs/{job_id}/t/" in url
        if not query:
            assert items["bare.mp4"]["thumbnail"] is None
    picture = await client.session.get(url)  # no headers: the signed URL is the authority
    assert picture.status == 200
    assert picture.headers["Content-Type"] == "image/jpeg"
