"""Generations with the `local` provider, end to end through the API: the job
engine runs ffmpeg, the result becomes the user's video (probed: duration and
size as asked), credits are held and settled, events reach the WebSocket."""

from __future__ import annotations

import asyncio
import subprocess
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
from server.db import credits as credits_db
from tests.clips import ffmpeg_exe, make_image
from tests.conftest import User, register_and_login, truncate_all

Client = TestClient[Any, Any]
FINISHED = {"succeeded", "failed", "canceled"}


@pytest.fixture
async def gen_client(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> Client:
    # A price, so that holds and captures are visible in the ledger.
    app = create_app(make_settings(generation_local_price_per_second=1.5))
    client = await aiohttp_client(app)
    await truncate_all(app)
    return client


async def wait_for_generation(client: Client, user: User, gid: str) -> Any:
    async with asyncio.timeout(120):
        while True:
            resp = await client.get(f"/api/v1/generations/{gid}", headers=user.headers)
            assert resp.status == 200
            body = await resp.json()
            if body["status"] in FINISHED:
                return body
            await asyncio.sleep(0.2)


async def credits(client: Client, user: User) -> Any:
    return await (await client.get("/api/v1/credits", headers=user.headers)).json()


def decode_all(path: Path) -> str:
    """Decode every frame (playable end to end); ffmpeg's stderr tells duration and size."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


async def test_prompt_to_video(gen_client: Client, tmp_path: Path) -> None:
    user = await register_and_login(gen_client)
    ws = await gen_client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": user.access_token})
    assert (await ws.receive_json(timeout=5))["type"] == "ready"

    resp = await gen_client.post(
        "/api/v1/generations",
        json={
            "prompt": "A lighthouse at dusk: waves, gulls; 'quotes' and [brackets] %{pts}",
            "provider": "local",
            "duration_seconds": 3,
            "resolution": "360p",
            "aspect_ratio": "9:16",
            "process": ["thumbnail"],
        },
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    created = await resp.json()
    assert created["status"] == "queued"
    assert created["provider"] == "local" and created["estimate"] == 5  # ceil(1.5 * 3)
    assert created["credits_held"] == 5

    done = await wait_for_generation(gen_client, user, created["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == 100 and done["credits_charged"] == 5
    assert await credits(gen_client, user) == {"balance": 95, "held": 0}

    video = await (
        await gen_client.get(f"/api/v1/videos/{done['video_id']}", headers=user.headers)
    ).json()
    meta = video["metadata"]
    assert (meta["width"], meta["height"]) == (360, 640)
    assert abs(meta["duration"] - 3) < 0.2
    # The bytes are a playable MP4: decode every frame.
    resp = await gen_client.get(f"/api/v1/videos/{done['video_id']}/content", headers=user.headers)
    assert resp.status == 200
    out = tmp_path / "generated.mp4"
    out.write_bytes(await resp.read())
    decode_all(out)
    # `process` queued a thumbnail job on the result.
    jobs = await (
        await gen_client.get(f"/api/v1/jobs?video_id={done['video_id']}", headers=user.headers)
    ).json()
    assert [j["operation"] for j in jobs["items"]] == ["thumbnail"]

    # The socket saw the generation through.
    seen: list[str] = []
    async with asyncio.timeout(10):
        while "generation.succeeded" not in seen:
            seen.append((await ws.receive_json())["type"])
    assert "generation.queued" in seen and "generation.progress" in seen
    await ws.close()


async def test_image_to_video(gen_client: Client, tmp_path: Path) -> None:
    user = await register_and_login(gen_client)
    image = make_image(tmp_path / "ref.jpg", "jpeg", width=640, height=480)
    resp = await gen_client.put(
        "/api/v1/uploads/ref.jpg", data=image.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    image_id = (await resp.json())["id"]
    body = {
        "prompt": "Slowly zoom into the pattern",
        "image_id": image_id,
        "duration_seconds": 2,
        "resolution": "480p",
        "aspect_ratio": "1:1",
    }
    resp = await gen_client.post("/api/v1/generations", json=body, headers=user.headers)
    assert resp.status == 202, await resp.text()
    created = await resp.json()
    assert created["provider"] == "local"  # `auto`: the only (and cheapest) one
    done = await wait_for_generation(gen_client, user, created["id"])
    assert done["status"] == "succeeded", done["error"]
    video = await (
        await gen_client.get(f"/api/v1/videos/{done['video_id']}", headers=user.headers)
    ).json()
    assert (video["metadata"]["width"], video["metadata"]["height"]) == (480, 480)
    assert abs(video["metadata"]["duration"] - 2) < 0.2

    # A video is not an image; someone else's image is not found.
    other = await register_and_login(gen_client)
    resp = await gen_client.post("/api/v1/generations", json=body, headers=other.headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "image_not_found"
    body["image_id"] = done["video_id"]
    resp = await gen_client.post("/api/v1/generations", json=body, headers=user.headers)
    assert resp.status == 404


async def test_idempotency_cancel_and_refusals(gen_client: Client) -> None:
    user = await register_and_login(gen_client)
    body = {"prompt": "idempotent", "duration_seconds": 20, "resolution": "1080p"}
    headers = {**user.headers, "Idempotency-Key": "k-1"}
    first, second = await asyncio.gather(
        gen_client.post("/api/v1/generations", json=body, headers=headers),
        gen_client.post("/api/v1/generations", json=body, headers=headers),
    )
    assert {first.status, second.status} == {202}
    a, b = await first.json(), await second.json()
    assert a["id"] == b["id"]
    # One generation, one hold of 30 credits (1.5/s for 20 s).
    ledger = await (
        await gen_client.get("/api/v1/credits/transactions", headers=user.headers)
    ).json()
    holds = [t for t in ledger["items"] if t["kind"] == "hold"]
    assert [t["balance_delta"] for t in holds] == [-30]
    assert (
        await gen_client.get("/api/v1/generations?limit=100", headers=user.headers)
    ).status == 200
    resp = await gen_client.post(
        "/api/v1/generations", json={**body, "prompt": "other"}, headers=headers
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "idempotency_key_reused"

    resp = await gen_client.post(f"/api/v1/generations/{a['id']}/cancel", headers=user.headers)
    assert resp.status in (202, 409)
    done = await wait_for_generation(gen_client, user, a["id"])
    if done["status"] == "canceled":
        assert await credits(gen_client, user) == {"balance": 100, "held": 0}
        assert done["credits_charged"] == 0

    # Over the balance: 402, nothing held.
    resp = await gen_client.post(
        "/api/v1/generations",
        json={"prompt": "x", "duration_seconds": 20, "resolution": "360p"},
        headers=user.headers,
    )
    # 30 credits fit; four more do not.
    statuses = [resp.status]
    for _ in range(4):
        r = await gen_client.post(
            "/api/v1/generations",
            json={"prompt": "x", "duration_seconds": 20, "resolution": "360p"},
            headers=user.headers,
        )
        statuses.append(r.status)
    assert 402 in statuses
    # Unsupported requests are clear 4xx.
    for bad, code in (
        ({"provider": "nope"}, 400),
        ({"resolution": "8k"}, 422),
        ({"duration_seconds": 500}, 422),
        ({"process": ["bogus"]}, 400),
    ):
        r = await gen_client.post(
            "/api/v1/generations",
            json={"prompt": "x", "duration_seconds": 2, **bad},
            headers=user.headers,
        )
        assert r.status == code, (bad, await r.text())

    listing = await (await gen_client.get("/api/v1/generations", headers=user.headers)).json()
    assert listing["items"] and all(g["provider"] == "local" for g in listing["items"])
    providers = await (await gen_client.get("/api/v1/providers", headers=user.headers)).json()
    local = next(p for p in providers["items"] if p["name"] == "local")
    assert local["configured"] and local["circuit"] == "closed" and local["image_to_video"]


async def test_many_generations_at_once_never_overdraw(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    """16 generations of 25 credits race for 100: exactly 4 are queued, the rest
    are 402; once they end the ledger sums to the account, nothing held."""
    client = await aiohttp_client(create_app(make_settings(generation_local_price_per_second=25)))
    await truncate_all(client.app)
    user = await register_and_login(client)
    body = {"prompt": "race", "duration_seconds": 1, "resolution": "360p"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/generations", json=body, headers=user.headers) for _ in range(16))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [202] * 4 + [402] * 12
    queued = [(await r.json())["id"] for r in answers if r.status == 202]
    for gid in queued:
        done = await wait_for_generation(client, user, gid)
        assert done["status"] == "succeeded", done["error"]
    assert await credits(client, user) == {"balance": 0, "held": 0}
    async with client.app[appkeys.POOL].acquire() as conn:
        assert await credits_db.sums(conn, uuid.UUID(user.id)) == (0, 0)
    kinds = [
        t["kind"]
        for t in (
            await (
                await client.get("/api/v1/credits/transactions?limit=100", headers=user.headers)
            ).json()
        )["items"]
    ]
    assert sorted(kinds) == sorted(["grant"] + ["hold"] * 4 + ["capture"] * 4)


async def test_completion_reaches_webhooks_and_email_as_jobs_do(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    aiohttp_server: Callable[..., Awaitable[Any]],
) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append({"event": request.headers["X-Frameflow-Event"], **(await request.json())})
        return web.Response()

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(receiver_app, host="127.0.0.1")
    client = await aiohttp_client(create_app(make_settings(webhook_allowed_hosts="127.0.0.1")))
    await truncate_all(client.app)
    client.app[appkeys.WEBHOOK_SENDER].poll_seconds = 0.05
    user = await register_and_login(client)
    resp = await client.post(
        "/api/v1/webhooks",
        json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["job.succeeded"]},
        headers=user.headers,
    )
    assert resp.status == 201, await resp.text()
    resp = await client.post(
        "/api/v1/generations",
        json={"prompt": "notify me", "duration_seconds": 1, "resolution": "360p"},
        headers=user.headers,
    )
    created = await resp.json()
    done = await wait_for_generation(client, user, created["id"])
    assert done["status"] == "succeeded", done["error"]
    async with asyncio.timeout(30):
        while not received:  # noqa: ASYNC110 - the sender drains on its own schedule
            await asyncio.sleep(0.05)
    [delivery] = received
    assert delivery["event"] == "job.succeeded"
    job = delivery["data"]["job"]
    assert job["id"] == done["job_id"] and job["operation"] == "generate"
    assert job["params"] == {"generation_id": done["id"]} and job["video_id"] is None
    # The mail for the job's ending is queued in the same transaction, like any job's.
    async with client.app[appkeys.POOL].acquire() as conn:
        events = await conn.fetch(
            "SELECT event FROM notification_log WHERE job_id = $1", uuid.UUID(done["job_id"])
        )
    assert [r["event"] for r in events] == ["job.succeeded"]
