"""Batches over HTTP on real PostgreSQL and real uploads: every job or none (a missing
or foreign id, an invalid param, a param one video cannot take, the quota), counts by
status, cancel all, a search as the list of videos, presets in a batch."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.clips import make_clip
from tests.conftest import User, register_and_login
from tests.test_admin import make_admin

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # No runner: queued jobs stay queued, so counts and cancels are exact.
    return make_settings(workers_enabled=False, batch_max_jobs=6)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "short.mp4", seconds=1)


async def upload(client: Client, user: User, path: Path, name: str | None = None) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{name or path.name}", data=path.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def job_count(client: Client, user: User) -> int:
    resp = await client.get("/api/v1/jobs", params={"limit": "100"}, headers=user.headers)
    assert resp.status == 200
    return len((await resp.json())["items"])


async def batch(client: Client, user: User, body: dict[str, Any], status: int) -> Any:
    resp = await client.post("/api/v1/jobs/batch", json=body, headers=user.headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


THUMB = {"operation": "thumbnail", "params": {}}


async def test_batch_queues_every_job_and_counts_them(
    client: Client, user: User, sample_mp4: Path
) -> None:
    ids = [await upload(client, user, sample_mp4) for _ in range(3)]
    body = await batch(
        client,
        user,
        {
            "video_ids": [*ids, ids[0]],  # a repeated id counts once
            "operations": [THUMB, {"operation": "thumbnail", "params": {"time": 1.5}}],
        },
        202,
    )
    assert body["job_count"] == 6 and len(body["job_ids"]) == 6
    assert body["counts"]["queued"] == 6 and not body["done"]
    assert await job_count(client, user) == 6
    resp = await client.get(f"/api/v1/batches/{body['id']}", headers=user.headers)
    assert resp.status == 200
    shown = await resp.json()
    assert shown["counts"] == {
        "queued": 6,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }
    # Each job is an ordinary job of the user's, with the params asked for.
    resp = await client.get(f"/api/v1/jobs/{body['job_ids'][1]}", headers=user.headers)
    assert (await resp.json())["params"]["time"] == 1.5

    # Cancel all: every queued job is canceled at once, and the quota holds given back.
    resp = await client.post(f"/api/v1/batches/{body['id']}/cancel", headers=user.headers)
    assert resp.status == 202, await resp.text()
    canceled = await resp.json()
    assert canceled["counts"]["canceled"] == 6 and canceled["counts"]["queued"] == 0
    assert canceled["done"]
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["used_bytes"] == sample_mp4.stat().st_size * 3

    # Someone else's batch does not exist for them.
    other = await register_and_login(client)
    resp = await client.get(f"/api/v1/batches/{body['id']}", headers=other.headers)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "batch_not_found"
    resp = await client.post(f"/api/v1/batches/{body['id']}/cancel", headers=other.headers)
    assert resp.status == 404


async def test_one_bad_video_or_param_creates_nothing(
    client: Client, user: User, sample_mp4: Path, short_clip: Path
) -> None:
    mine = [await upload(client, user, sample_mp4) for _ in range(2)]
    short = await upload(client, user, short_clip)
    other = await register_and_login(client)
    foreign = await upload(client, other, sample_mp4)
    missing = str(uuid.uuid4())

    error = await batch(client, user, {"video_ids": [*mine, missing], "operations": [THUMB]}, 404)
    assert error["error"]["code"] == "video_not_found"
    assert error["error"]["video_ids"] == [missing]

    error = await batch(client, user, {"video_ids": [*mine, foreign], "operations": [THUMB]}, 404)
    assert error["error"]["video_ids"] == [foreign]  # the same answer as a missing id

    error = await batch(
        client,
        user,
        {"video_ids": mine, "operations": [THUMB, {"operation": "thumbnail", "params": {"x": 1}}]},
        400,
    )
    assert error["error"]["code"] == "invalid_params"
    assert error["error"]["field"] == "operations[1].params.x"

    # Valid for the 2 s clips, past the end of the 1 s one: the whole batch is refused.
    late = {"operation": "thumbnail", "params": {"time": 1.5}}
    error = await batch(client, user, {"video_ids": [*mine, short], "operations": [late]}, 400)
    assert error["error"]["field"] == "operations[0].params.time"
    assert error["error"]["video_id"] == short

    error = await batch(
        client, user, {"video_ids": mine, "operations": [{"operation": "nope"}]}, 400
    )
    assert error["error"]["code"] == "unknown_operation"
    assert error["error"]["field"] == "operations[0].operation"

    # Over the job limit (a setting: 6 here): 7 jobs are refused before any work.
    error = await batch(client, user, {"video_ids": mine, "operations": [THUMB] * 4}, 400)
    assert error["error"]["code"] == "batch_too_large"

    error = await batch(client, user, {"video_ids": mine}, 400)
    assert error["error"]["code"] == "invalid_field"

    assert await job_count(client, user) == 0
    assert await job_count(client, other) == 0


async def test_a_batch_over_the_quota_creates_nothing(
    client: Client, user: User, settings: Settings, sample_mp4: Path
) -> None:
    ids = [await upload(client, user, sample_mp4) for _ in range(3)]
    used = (await (await client.get("/api/v1/me", headers=user.headers)).json())["used_bytes"]
    # One job's estimate, learned from the ledger: queue one, read the hold, cancel it.
    resp = await client.post(f"/api/v1/videos/{ids[0]}/jobs", json=THUMB, headers=user.headers)
    assert resp.status == 202
    job_id = (await resp.json())["id"]
    held = (await (await client.get("/api/v1/me", headers=user.headers)).json())["used_bytes"]
    estimate = held - used
    assert estimate > 0
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user.headers)).status == 202

    admin = await make_admin(client, settings)
    room = used + estimate * 2 + estimate // 2  # two jobs fit, three do not
    resp = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"quota_bytes": room}, headers=admin.headers
    )
    assert resp.status == 200, await resp.text()

    error = await batch(client, user, {"video_ids": ids, "operations": [THUMB]}, 413)
    assert error["error"]["code"] == "quota_exceeded"
    assert error["error"]["estimated_bytes"] == 3 * estimate
    assert await job_count(client, user) == 1  # the canceled one only
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["used_bytes"] == used

    body = await batch(client, user, {"video_ids": ids[:2], "operations": [THUMB]}, 202)
    assert body["job_count"] == 2


async def test_a_search_picks_the_videos(client: Client, user: User, sample_mp4: Path) -> None:
    beach = [await upload(client, user, sample_mp4, f"beach-{i}.mp4") for i in range(2)]
    await upload(client, user, sample_mp4, "mountain.mp4")
    for video_id in beach:
        resp = await client.patch(
            f"/api/v1/videos/{video_id}", json={"tags": ["holiday"]}, headers=user.headers
        )
        assert resp.status == 200, await resp.text()
    body = await batch(
        client, user, {"query": {"q": "beach", "tag": ["holiday"]}, "operations": [THUMB]}, 202
    )
    assert body["job_count"] == 2
    videos = set()
    for job_id in body["job_ids"]:
        job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)).json()
        videos.add(job["video_id"])
    assert videos == set(beach)

    error = await batch(client, user, {"query": {"q": "volcano"}, "operations": [THUMB]}, 400)
    assert error["error"]["code"] == "no_videos"
    error = await batch(client, user, {"query": {"kind": "sound"}, "operations": [THUMB]}, 400)
    assert error["error"]["field"] == "kind"


async def test_a_preset_in_a_batch(client: Client, user: User, sample_mp4: Path) -> None:
    ids = [await upload(client, user, sample_mp4) for _ in range(2)]
    steps = [
        {"operation": "thumbnail", "params": {"width": 160}},
        {"operation": "frames", "params": {}},
    ]
    resp = await client.post(
        "/api/v1/presets", json={"name": "previews", "operations": steps}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    body = await batch(client, user, {"video_ids": ids, "preset": "previews"}, 202)
    assert body["job_count"] == 4 and body["preset"] == "previews"
    ops = []
    for job_id in body["job_ids"]:
        job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)).json()
        ops.append((job["operation"], job["params"].get("width")))
    assert ops.count(("thumbnail", 160)) == 2 and sum(o == "frames" for o, _ in ops) == 2

    error = await batch(client, user, {"video_ids": ids, "preset": "nope"}, 404)
    assert error["error"]["code"] == "preset_not_found"
    error = await batch(
        client, user, {"video_ids": ids, "preset": "previews", "operations": [THUMB]}, 400
    )
    assert error["error"]["code"] == "invalid_field"
