"""Quotas: uploads stop at the quota, an admin can raise it, jobs whose outputs
clearly cannot fit are refused up front, and deleting frees space at once."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.jobs.operations import registry
from server.jobs.operations.estimates import estimated_output_bytes
from server.quota.ledger import human_bytes
from server.videos.model import Video
from tests.conftest import User, leftovers, register_and_login, truncate_all
from tests.test_admin import make_admin

Client = TestClient[Any, Any]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def quota_client(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> Client:
    client = await aiohttp_client(create_app(make_settings(default_quota_bytes=30_000)))
    await truncate_all(client.app)
    return client


def _chunks(body: bytes, size: int = 8192) -> Any:
    async def gen() -> Any:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen()


async def _me(client: Client, user: User) -> dict[str, Any]:
    resp = await client.get("/api/v1/me", headers=user.headers)
    return dict(await resp.json())


async def _set_quota(client: Client, admin: User, user: User, quota: int) -> None:
    resp = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"quota_bytes": quota}, headers=admin.headers
    )
    assert resp.status == 200, await resp.text()


async def _upload(client: Client, user: User, path: Path) -> Any:
    return await client.put(
        f"/api/v1/uploads/{path.name}", data=_chunks(path.read_bytes()), headers=user.headers
    )


async def test_upload_over_quota_is_413_until_an_admin_raises_it(
    quota_client: Client, settings: Settings, sample_mp4: Path
) -> None:
    client = quota_client
    user = await register_and_login(client)
    resp = await _upload(client, user, sample_mp4)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "quota_exceeded"
    assert leftovers(client.app) == []

    admin = await make_admin(client, settings)
    await _set_quota(client, admin, user, 10 * 1024 * 1024)
    resp = await _upload(client, user, sample_mp4)
    assert resp.status == 201, await resp.text()
    assert (await _me(client, user))["used_bytes"] == sample_mp4.stat().st_size


async def test_job_whose_outputs_cannot_fit_is_refused(
    client: Client, settings: Settings, user: User, sample_mp4: Path
) -> None:
    admin = await make_admin(client, settings)
    size = sample_mp4.stat().st_size
    await _set_quota(client, admin, user, size + 50_000)
    resp = await _upload(client, user, sample_mp4)
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    url = f"/api/v1/videos/{video_id}/jobs"

    # Renditions at their bitrate caps: ~200 KB for 2 s, more than the 50 KB left.
    resp = await client.post(url, json={"operation": "transcode"}, headers=user.headers)
    assert resp.status == 413, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "quota_exceeded"
    assert error["remaining"] == 50_000 and error["estimated_bytes"] > 50_000
    assert "quota" in error["message"] and human_bytes(50_000) in error["message"]
    jobs = await (await client.get("/api/v1/jobs", headers=user.headers)).json()
    assert jobs["items"] == []  # nothing was queued

    # A thumbnail (~23 KB) fits.
    resp = await client.post(url, json={"operation": "thumbnail"}, headers=user.headers)
    assert resp.status == 202, await resp.text()

    # With more room the same transcode is accepted.
    await _set_quota(client, admin, user, size + 10_000_000)
    resp = await client.post(url, json={"operation": "transcode"}, headers=user.headers)
    assert resp.status == 202, await resp.text()


async def test_upload_whose_process_outputs_cannot_fit_is_refused(
    client: Client, settings: Settings, user: User, sample_mp4: Path
) -> None:
    admin = await make_admin(client, settings)
    size = sample_mp4.stat().st_size
    await _set_quota(client, admin, user, size + 50_000)
    resp = await client.put(
        "/api/v1/uploads/p.mp4?process=transcode",
        data=sample_mp4.read_bytes(),
        headers=user.headers,
    )
    assert resp.status == 413, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "quota_exceeded" and error["remaining"] == 50_000
    # Neither the video nor its object was kept.
    assert leftovers(client.app) == []
    assert (await _me(client, user))["used_bytes"] == 0


async def test_delete_frees_quota_at_once(
    client: Client, settings: Settings, user: User, sample_mp4: Path
) -> None:
    admin = await make_admin(client, settings)
    size = sample_mp4.stat().st_size
    await _set_quota(client, admin, user, size + size // 2)  # room for one upload only
    first = await _upload(client, user, sample_mp4)
    assert first.status == 201
    assert (await _upload(client, user, sample_mp4)).status == 413
    resp = await client.delete(f"/api/v1/videos/{(await first.json())['id']}", headers=user.headers)
    assert resp.status == 204
    assert (await _me(client, user))["used_bytes"] == 0
    assert (await _upload(client, user, sample_mp4)).status == 201


async def test_queued_jobs_hold_their_estimate_so_quick_creation_cannot_overshoot(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient, sample_mp4: Path
) -> None:
    # An API-only instance: no runner is built, so the jobs stay queued.
    settings = make_settings(workers_enabled=False)
    client = await aiohttp_client(create_app(settings))
    assert appkeys.RUNNER not in client.app
    await truncate_all(client.app)
    user = await register_and_login(client)
    admin = await make_admin(client, settings)
    size = sample_mp4.stat().st_size
    await _set_quota(client, admin, user, 10_000_000)
    resp = await _upload(client, user, sample_mp4)
    video_id = (await resp.json())["id"]
    url = f"/api/v1/videos/{video_id}/jobs"
    estimate = _estimate(
        "transcode", {}, Video(**{**_VIDEO_FIELDS, **await _video_row(client, user, video_id)})
    )
    # Room for one transcode's estimate, not two.
    await _set_quota(client, admin, user, size + estimate + estimate // 2)

    first = await client.post(url, json={"operation": "transcode"}, headers=user.headers)
    assert first.status == 202, await first.text()
    assert (await _me(client, user))["used_bytes"] == size + estimate  # held while queued
    second = await client.post(url, json={"operation": "transcode"}, headers=user.headers)
    assert second.status == 413, await second.text()
    assert (await second.json())["error"]["remaining"] == estimate // 2

    # Canceling the queued job releases its hold; the second now fits.
    job_id = (await first.json())["id"]
    resp = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user.headers)
    assert resp.status == 202
    assert (await _me(client, user))["used_bytes"] == size
    again = await client.post(url, json={"operation": "transcode"}, headers=user.headers)
    assert again.status == 202, await again.text()
    # Deleting the video gives back the source and the open hold at once.
    resp = await client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert (await _me(client, user))["used_bytes"] == 0


_VIDEO_FIELDS: dict[str, Any] = {
    "storage_key": "k",
    "sha256": "0" * 64,
    "status": "ready",
    "created_at": datetime.now(UTC),
}


async def _video_row(client: Client, user: User, video_id: str) -> dict[str, Any]:
    shown = await (await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)).json()
    return {
        "id": uuid.UUID(shown["id"]),
        "user_id": uuid.UUID(user.id),
        "filename": shown["filename"],
        "size": shown["size"],
        "content_type": shown["content_type"],
        "kind": shown["kind"],
        "metadata": shown["metadata"],
    }


# --- estimates -------------------------------------------------------------------


def _video(kind: str = "video", **metadata: Any) -> Video:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "filename": "v.mp4",
        "storage_key": "k",
        "size": 1,
        "sha256": "0" * 64,
        "content_type": "video/mp4" if kind == "video" else "image/jpeg",
        "kind": kind,
        "status": "ready",
        "metadata": metadata,
        "created_at": datetime.now(UTC),
        "expires_at": datetime.now(UTC),
    }
    names = {f.name for f in dataclasses.fields(Video)}
    return Video(**{k: v for k, v in values.items() if k in names})


HD = {"duration": 10.0, "width": 1920, "height": 1080, "fps": 30.0, "audio_codec": "aac"}


def _estimate(op: str, params: dict[str, Any], video: Video) -> int:
    operation = registry()[op]
    parsed = operation.parse_params(params, video, Settings())
    estimate = estimated_output_bytes(operation, parsed, video)
    assert estimate is not None, op
    return estimate


def test_every_operation_estimates_its_outputs() -> None:
    video = _video(**HD)
    caps_kbps = (1400 + 96) + (2800 + 128) + (5000 + 128)
    transcode = _estimate("transcode", {}, video)
    assert transcode == pytest.approx(caps_kbps * 1000 / 8 * 10, rel=0.1)
    assert _estimate("transcode", {"renditions": ["480p"]}, video) < transcode / 5
    assert _estimate("hls", {}, video) >= transcode
    # 10 one-per-second JPEG frames of 1920x1080 at ~0.3 byte per pixel; PNG twice that.
    jpg = _estimate("frames", {"fps": 1}, video)
    assert jpg == pytest.approx(10 * 1920 * 1080 * 0.3, rel=0.05)
    assert _estimate("frames", {"fps": 1, "format": "png"}, video) == pytest.approx(2 * jpg, 0.05)
    assert _estimate("frames", {"fps": 1, "width": 960}, video) < jpg / 3
    thumb = _estimate("thumbnail", {}, video)
    assert thumb == pytest.approx(1920 * 1080 * 0.3, rel=0.05)
    assert _estimate("thumbnail", {"sprite": True}, video) > thumb
    assert _estimate("convert", {"bitrate": 1000, "audio": False}, video) == pytest.approx(
        1000 * 1000 / 8 * 10, rel=0.1
    )
    assert _estimate("convert", {"width": 640}, video) < _estimate("convert", {}, video)
    assert _estimate("convert", {"container": "gif", "end": 2}, video) > 0
    image = _video("image", width=1000, height=800)
    assert _estimate("convert", {"format": "png"}, image) == pytest.approx(1000 * 800 * 0.6)
    assert _estimate("thumbnail", {"width": 100}, image) == pytest.approx(100 * 80 * 0.3, 0.05)


def test_an_operation_without_an_estimator_is_not_checked() -> None:
    class Bare:
        name = "bare"
        kinds = frozenset({"video"})

    assert estimated_output_bytes(Bare(), {}, _video(**HD)) is None  # type: ignore[arg-type]


def test_human_bytes() -> None:
    assert human_bytes(999) == "999 bytes"
    assert human_bytes(50_000) == "50.0 KB"
    assert human_bytes(2_500_000_000) == "2.5 GB"
