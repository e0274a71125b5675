"""Direct uploads: a creator makes a one-time URL; whoever holds it uploads without
credentials (curl here, a browser page on another origin in test_page_direct_upload.py),
and the video is the creator's. The URL is dead after use, expiry or cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from server import appkeys
from server.app import create_app
from tests.clips import make_image
from tests.conftest import User, leftovers, register_and_login, truncate_all
from tests.test_api_keys import bearer, create_key
from tests.test_presets import STEPS, save

DIRECT = "/api/v1/direct-uploads"


async def create_direct(
    client: TestClient[Any, Any], headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    resp = await client.post(DIRECT, json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


def curl_put(url: str, path: Path) -> tuple[int, str]:
    """`curl -T FILE URL`, as an end user's script would: no credentials at all."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-T", str(path), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


async def state_of(client: TestClient[Any, Any], user: User, upload_id: str) -> dict[str, Any]:
    resp = await client.get(f"{DIRECT}/{upload_id}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    shown: dict[str, Any] = await resp.json()
    return shown


async def test_curl_uploads_once_and_the_video_is_the_creators(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    created = await create_direct(
        client,
        user.headers,
        max_size=1_000_000,
        allowed_types=["video/*"],
        metadata={"customer": "42"},
        process="thumbnail",
    )
    assert created["status"] == "waiting" and created["video_id"] is None
    url = created["url"]
    assert url.startswith(f"http://127.0.0.1:{client.server.port}/api/v1/direct-uploads/u/")
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": user.access_token})
    assert (await ws.receive_json(timeout=5))["type"] == "ready"
    assert (await ws.receive_json(timeout=5))["type"] == "snapshot"

    status, body = await asyncio.to_thread(curl_put, url, sample_mp4)
    assert status == 201, body
    shown = await state_of(client, user, created["id"])
    assert shown["status"] == "done" and shown["metadata"] == {"customer": "42"}
    video_id = shown["video_id"]
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 200
    async with asyncio.timeout(10):
        while (event := await ws.receive_json())["type"] != "direct_upload.completed":
            pass
    assert event["video_id"] == video_id
    assert event["direct_upload"]["id"] == created["id"]
    await ws.close()

    # Used once: dead.
    status, body = await asyncio.to_thread(curl_put, url, sample_mp4)
    assert status == 410 and "direct_upload_used" in body
    async with client.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 1
        jobs = await conn.fetch("SELECT operation FROM jobs WHERE video_id = $1::uuid", video_id)
    assert [j["operation"] for j in jobs] == ["thumbnail"]


async def test_size_and_type_are_enforced_and_a_refusal_leaves_the_url_usable(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, tmp_path: Path
) -> None:
    size = sample_mp4.stat().st_size
    small = await create_direct(client, user.headers, max_size=size - 1)
    status, body = await asyncio.to_thread(curl_put, small["url"], sample_mp4)
    assert status == 413 and "payload_too_large" in body
    assert (await state_of(client, user, small["id"]))["status"] == "waiting"

    images = await create_direct(client, user.headers, allowed_types=["image/*"])
    status, body = await asyncio.to_thread(curl_put, images["url"], sample_mp4)
    assert status == 415 and "type_not_allowed" in body
    # The refusal did not use the URL up: the right kind of file still goes through.
    png = make_image(tmp_path / "still.png")
    status, body = await asyncio.to_thread(curl_put, images["url"], png)
    assert status == 201, body
    assert (await state_of(client, user, images["id"]))["status"] == "done"
    async with client.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 1
    # The refused files left nothing behind: only the image and its thumbnail.
    assert len(leftovers(client.app)) == 2


async def test_expired_and_canceled_urls_are_dead(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    expiring = await create_direct(client, user.headers, expires_in=60)
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE direct_uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
            expiring["id"],
        )
    status, body = await asyncio.to_thread(curl_put, expiring["url"], sample_mp4)
    assert status == 410 and "direct_upload_expired" in body
    assert (await state_of(client, user, expiring["id"]))["status"] == "expired"

    canceled = await create_direct(client, user.headers)
    resp = await client.post(f"{DIRECT}/{canceled['id']}/cancel", headers=user.headers)
    assert resp.status == 200 and (await resp.json())["status"] == "canceled"
    status, body = await asyncio.to_thread(curl_put, canceled["url"], sample_mp4)
    assert status == 410 and "direct_upload_canceled" in body
    resp = await client.post(f"{DIRECT}/{canceled['id']}/cancel", headers=user.headers)
    assert resp.status == 409
    status, body = await asyncio.to_thread(
        curl_put, canceled["url"].rsplit("/", 1)[0] + "/not-a-token", sample_mp4
    )
    assert status == 404
    async with client.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 0


async def test_api_keys_need_videos_write_and_others_see_nothing(
    client: TestClient[Any, Any], user: User
) -> None:
    writer = await create_key(client, user, "videos:write", "videos:read")
    reader = await create_key(client, user, "videos:read")
    created = await create_direct(client, bearer(writer["secret"]), max_size=1000)
    resp = await client.post(DIRECT, json={}, headers=bearer(reader["secret"]))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "insufficient_scope"
    other = await register_and_login(client)
    resp = await client.get(f"{DIRECT}/{created['id']}", headers=other.headers)
    assert resp.status == 404
    resp = await client.post(f"{DIRECT}/{created['id']}/cancel", headers=other.headers)
    assert resp.status == 404
    for body, field in (
        ({"max_size": 0}, "max_size"),
        ({"expires_in": 5}, "expires_in"),
        ({"allowed_types": ["text/plain"]}, "allowed_types"),
        ({"cors_origin": "https://x.example/path"}, "cors_origin"),
        ({"metadata": "nope"}, "metadata"),
    ):
        resp = await client.post(DIRECT, json=body, headers=user.headers)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["field"] == field


@pytest.mark.parametrize("origin", ["https://shop.example", None])
async def test_cors_only_for_the_creators_origin(
    client: TestClient[Any, Any], user: User, origin: str | None
) -> None:
    created = await create_direct(client, user.headers, cors_origin=origin)
    path = created["url"].split(str(client.server.port), 1)[1]
    for asker in ("https://shop.example", "https://evil.example"):
        resp = await client.options(
            path, headers={"Origin": asker, "Access-Control-Request-Method": "PUT"}
        )
        assert resp.status == 204
        allowed = resp.headers.get("Access-Control-Allow-Origin")
        assert allowed == (asker if asker == origin else None)


async def test_tuspy_uses_the_url_without_credentials_and_resumes(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, request: pytest.FixtureRequest
) -> None:
    """The URL's `/tus/` speaks tus: tuspy sends the file in chunks (stopping halfway as
    a dropped client would), a new client resumes it, and the video is the creator's."""
    from tusclient.client import TusClient

    created = await create_direct(client, user.headers, allowed_types=["video/mp4"])
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": user.access_token})
    assert (await ws.receive_json(timeout=5))["type"] == "ready"
    assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    tus = TusClient(created["url"] + "/tus/")  # no headers at all
    first, second = sample_mp4.open("rb"), sample_mp4.open("rb")
    request.addfinalizer(first.close)
    request.addfinalizer(second.close)
    uploader = tus.uploader(file_stream=first, chunk_size=20_000, metadata={"filename": "d.mp4"})
    await asyncio.to_thread(uploader.upload, stop_at=20_000)
    assert (await state_of(client, user, created["id"]))["status"] == "uploading"
    # While it is being sent, the URL takes no second upload.
    status, body = await asyncio.to_thread(curl_put, created["url"], sample_mp4)
    assert status == 409 and "direct_upload_in_progress" in body

    resumed = await asyncio.to_thread(
        tus.uploader, file_stream=second, url=uploader.url, chunk_size=20_000
    )
    assert resumed.offset == 20_000
    await asyncio.to_thread(resumed.upload)
    video_id = resumed.request.response_headers["frameflow-video-id"]
    shown = await state_of(client, user, created["id"])
    assert (shown["status"], shown["video_id"]) == ("done", video_id)
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert (await resp.json())["sha256"] == hashlib.sha256(sample_mp4.read_bytes()).hexdigest()
    async with asyncio.timeout(10):
        while (event := await ws.receive_json())["type"] != "direct_upload.completed":
            pass
    assert event["video_id"] == video_id
    await ws.close()
    # Used: neither a new tus upload nor a PUT.
    resp = await client.post(
        created["url"].split(str(client.server.port), 1)[1] + "/tus/",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"},
    )
    assert resp.status == 410


async def test_tus_refuses_a_type_not_allowed_and_frees_the_url(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from tusclient.client import TusClient
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed

    created = await create_direct(client, user.headers, allowed_types=["image/*"])
    tus = TusClient(created["url"] + "/tus/")
    stream = sample_mp4.open("rb")  # tuspy leaves files it opens to the collector
    request.addfinalizer(stream.close)
    uploader = tus.uploader(file_stream=stream, chunk_size=1_000_000)
    with pytest.raises((TusUploadFailed, TusCommunicationError)):
        await asyncio.to_thread(uploader.upload)
    assert (await state_of(client, user, created["id"]))["status"] == "waiting"
    png = make_image(tmp_path / "ok.png")
    status, body = await asyncio.to_thread(curl_put, created["url"], png)
    assert status == 201, body
    async with client.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM videos") == 1
        assert await conn.fetchval("SELECT used_bytes FROM users") == png.stat().st_size


async def test_a_webhook_hears_the_direct_upload_complete(
    make_settings: Any, aiohttp_client: Any, aiohttp_server: Any, sample_mp4: Path
) -> None:
    """`direct_upload.completed` is queued in the video's transaction and delivered
    to the creator's webhook (a receiver on loopback), rendered like the API's GET."""
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        arrived.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver, host="127.0.0.1")
    client = await aiohttp_client(create_app(make_settings(webhook_allowed_hosts="127.0.0.1")))
    await truncate_all(client.app)
    client.app[appkeys.WEBHOOK_SENDER].poll_seconds = 0.05
    creator = await register_and_login(client)
    resp = await client.post(
        "/api/v1/webhooks",
        json={"url": f"http://127.0.0.1:{server.port}/hook", "events": ["direct_upload.completed"]},
        headers=creator.headers,
    )
    assert resp.status == 201, await resp.text()
    created = await create_direct(client, creator.headers, max_size=1_000_000)

    status, body = await asyncio.to_thread(curl_put, created["url"], sample_mp4)
    assert status == 201, body
    async with asyncio.timeout(15):
        await arrived.wait()
    [delivery] = received
    assert delivery["type"] == "direct_upload.completed"
    shown = await state_of(client, creator, created["id"])
    assert delivery["data"]["direct_upload"] == shown
    assert shown["status"] == "done" and shown["video_id"]


async def test_the_sweep_forgets_dead_urls_a_week_after_expiry(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    from server.cleanup.sweep import run_sweep

    old_waiting = await create_direct(client, user.headers)
    old_canceled = await create_direct(client, user.headers)
    assert (
        await client.post(f"{DIRECT}/{old_canceled['id']}/cancel", headers=user.headers)
    ).status == 200
    recent = await create_direct(client, user.headers)
    used = await create_direct(client, user.headers)
    status, body = await asyncio.to_thread(curl_put, used["url"], sample_mp4)
    assert status == 201, body
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE direct_uploads SET expires_at = now() - interval '8 days' WHERE id <> $1",
            recent["id"],
        )
        await conn.execute(
            "UPDATE direct_uploads SET expires_at = now() - interval '1 day' WHERE id = $1",
            recent["id"],
        )
    app = client.app
    args = (app[appkeys.POOL], app[appkeys.VIDEOS], app[appkeys.STORAGE], app[appkeys.SETTINGS])
    assert (await run_sweep(*args, dry_run=True)).direct_uploads_removed == 2
    report = await run_sweep(*args)
    assert report.errors == [] and report.direct_uploads_removed == 2
    for gone in (old_waiting, old_canceled):
        resp = await client.get(f"{DIRECT}/{gone['id']}", headers=user.headers)
        assert resp.status == 404
    # Expired a day ago: its creator still reads it as expired. Done: it names the video.
    assert (await state_of(client, user, recent["id"]))["status"] == "expired"
    assert (await state_of(client, user, used["id"]))["status"] == "done"


async def test_a_preset_is_checked_at_creation_and_queued_when_the_file_arrives(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    """`preset` as `?preset=` on the creator's own uploads: an unknown one is the same
    400; the preset's jobs (its params) come with the video, by PUT and by tus."""
    resp = await client.post(DIRECT, json={"preset": "previews"}, headers=user.headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == ("preset_not_found", "preset")
    other = await register_and_login(client)
    await save(client, other, "previews", STEPS)  # another user's preset is not one
    assert (
        await client.post(DIRECT, json={"preset": "previews"}, headers=user.headers)
    ).status == 400
    await save(client, user, "previews", STEPS)

    created = await create_direct(client, user.headers, preset="previews", process="hls")
    assert created["preset"] == "previews"
    status, body = await asyncio.to_thread(curl_put, created["url"], sample_mp4)
    assert status == 201, body
    jobs = {job["operation"]: job["params"] for job in json.loads(body)["jobs"]}
    assert sorted(jobs) == ["frames", "hls", "thumbnail"]
    assert jobs["thumbnail"]["width"] == 160 and jobs["frames"]["fps"] == 2
    assert (await state_of(client, user, created["id"]))["preset"] == "previews"

    # tus at the URL: the creator's preset goes with it, whatever the uploader sends.
    created = await create_direct(client, user.headers, preset="previews")
    base = created["url"].split(str(client.server.port), 1)[1] + "/tus/"
    data = sample_mp4.read_bytes()
    resp = await client.post(
        base, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))}
    )
    assert resp.status == 201, await resp.text()
    resp = await client.patch(
        URL(resp.headers["Location"]).path,
        data=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
    )
    assert resp.status == 204, await resp.text()
    video_id = resp.headers["Frameflow-Video-Id"]
    resp = await client.get(
        "/api/v1/jobs", params={"video_id": video_id, "limit": "10"}, headers=user.headers
    )
    assert sorted(j["operation"] for j in (await resp.json())["items"]) == ["frames", "thumbnail"]


async def test_a_preset_gone_before_the_file_arrives_refuses_it_and_keeps_the_url(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    await save(client, user, "previews", STEPS)
    created = await create_direct(client, user.headers, preset="previews")
    resp = await client.delete("/api/v1/presets/previews", headers=user.headers)
    assert resp.status == 204
    status, body = await asyncio.to_thread(curl_put, created["url"], sample_mp4)
    assert status == 400 and json.loads(body)["error"]["code"] == "preset_not_found", body
    assert (await state_of(client, user, created["id"]))["status"] == "waiting"
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert (await resp.json())["items"] == []
    # Saved again under that name: the same URL now works, with its jobs.
    await save(client, user, "previews", STEPS)
    status, body = await asyncio.to_thread(curl_put, created["url"], sample_mp4)
    assert status == 201, body
    assert sorted(job["operation"] for job in json.loads(body)["jobs"]) == ["frames", "thumbnail"]
