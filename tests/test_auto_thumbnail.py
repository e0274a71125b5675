"""The `thumbnail` job queued after each upload (`FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD`, on by
default; the shared test settings turn it off): once per upload, not twice when asked for,
never at the cost of the upload (a full quota skips it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
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
