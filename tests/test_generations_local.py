"""Generations with the `local` provider, end to end through the API: the job
engine runs ffmpeg, the result becomes the user's video (probed: duration and
size as asked), credits are held and settled, events reach the WebSocket."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.app import create_app
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
    # One hold only: 30 credits of the 100.
    assert await credits(gen_client, user) in (
        {"balance": 70, "held": 30},
        {"balance": 70, "held": 0},
        {"balance": 100, "held": 0},
    )
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
