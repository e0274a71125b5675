"""`expires_at` on uploads: the default TTL, a shorter or longer `ttl`, and bad ones (400)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from tests.conftest import User, leftovers

DAY = 24 * 3600


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(video_ttl_seconds=7 * DAY, video_max_ttl_seconds=30 * DAY)


async def _row_ttl(app: web.Application, video_id: str) -> float:
    """Seconds from created_at to expires_at, as stored."""
    async with app[appkeys.POOL].acquire() as conn:
        value = await conn.fetchval(
            "SELECT EXTRACT(EPOCH FROM expires_at - created_at) FROM videos WHERE id = $1::uuid",
            video_id,
        )
    return float(value)


def _ttl_of(video: dict[str, Any]) -> float:
    created = datetime.fromisoformat(video["created_at"])
    return (datetime.fromisoformat(video["expires_at"]) - created).total_seconds()


async def test_default_ttl(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> None:
    resp = await client.put(
        "/api/v1/uploads/a.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    assert _ttl_of(video) == pytest.approx(7 * DAY, abs=5)
    assert await _row_ttl(client.app, video["id"]) == pytest.approx(7 * DAY, abs=5)
    # The video's own page shows the same expiry.
    resp = await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert (await resp.json())["expires_at"] == video["expires_at"]


@pytest.mark.parametrize("ttl", [3600, 20 * DAY, 30 * DAY])
async def test_put_with_shorter_or_longer_ttl(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, ttl: int
) -> None:
    resp = await client.put(
        f"/api/v1/uploads/a.mp4?ttl={ttl}", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    assert await _row_ttl(client.app, (await resp.json())["id"]) == pytest.approx(ttl, abs=5)


async def test_multipart_ttl_field(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    form = aiohttp.FormData()
    form.add_field("ttl", "7200")
    form.add_field("file", sample_mp4.read_bytes(), filename="form.mp4")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 201, await resp.text()
    assert _ttl_of(await resp.json()) == pytest.approx(7200, abs=5)


@pytest.mark.parametrize("ttl", [str(30 * DAY + 1), "0", "-5", "59", "abc", "1.5", "1e9"])
async def test_bad_ttl_is_400_and_stores_nothing(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, ttl: str
) -> None:
    resp = await client.put(
        f"/api/v1/uploads/a.mp4?ttl={ttl}", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_ttl"
    assert error["field"] == "ttl"
    assert "ttl" in error["message"]
    assert leftovers(client.app) == []


async def test_bad_ttl_in_form_is_400(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    form = aiohttp.FormData()
    form.add_field("ttl", str(31 * DAY))
    form.add_field("file", sample_mp4.read_bytes(), filename="form.mp4")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "ttl"
    assert leftovers(client.app) == []


def test_settings_reject_a_max_below_the_default(make_settings: Any) -> None:
    from config.settings import SettingsError

    with pytest.raises(SettingsError, match="VIDEO_MAX_TTL_SECONDS"):
        make_settings(video_ttl_seconds=10 * DAY, video_max_ttl_seconds=DAY)
    assert timedelta(seconds=make_settings().video_ttl_seconds) == timedelta(days=7)
