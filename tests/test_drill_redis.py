"""Failure drill: Redis goes away and comes back. Two instances share PostgreSQL and
a Redis of the test's own (a `redis-server` on a free loopback port — never CI's
shared Redis). While it is down uploads, jobs and the page keep working, and a
WebSocket on the other instance follows a job through the snapshot it asks for (the
poll path) instead of pub/sub; once Redis is back, fan-out resumes by itself."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.live.bus import RedisBus
from tests.conftest import register_and_login, truncate_all
from tests.notify_helpers import eventually, free_port
from tests.test_ws import (
    FINISHED,
    events_until,
    live_settings,
    open_socket,
    post_job,
    upload,
    with_fake_runner,
)

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class OwnRedis:
    """A redis-server this test may stop and start again, on one port, keeping nothing."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    server = OwnRedis(free_port())
    server.start()
    yield server
    server.stop()


async def answers(url: str) -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


async def snapshot_jobs(ws: aiohttp.ClientWebSocketResponse) -> dict[str, str]:
    """Ask for a snapshot (the poll path) and return its jobs' statuses; events that
    arrive first are skipped."""
    await ws.send_json({"type": "snapshot"})
    while True:
        message = await ws.receive_json(timeout=5)
        if message["type"] == "snapshot":
            return {job["id"]: job["status"] for job in message["jobs"]}


async def test_redis_down_and_back(
    own_redis: OwnRedis,
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    database_url: str,
    sample_mp4: Path,
) -> None:
    await eventually(lambda: answers(own_redis.url))
    settings = live_settings(make_settings, redis_url=own_redis.url)
    a = await aiohttp_client(create_app(settings))  # API only: its runner never claims
    b = await aiohttp_client(with_fake_runner(create_app(settings), settings, database_url))
    await truncate_all(a.app)
    buses = [a.app[appkeys.BUS], b.app[appkeys.BUS]]
    for bus in buses:
        assert isinstance(bus, RedisBus)
        await bus.subscribed.wait()
    user = await register_and_login(a)
    ws, _ = await open_socket(a, user)

    own_redis.stop()
    assert not await answers(own_redis.url)

    # Uploads, the page and jobs keep working without Redis.
    resp = await a.get("/")
    assert resp.status == 200
    video_id = await upload(a, user, sample_mp4)
    assert (await ws.receive_json(timeout=5))["type"] == "video.ready"  # A's own: local
    job_id = await post_job(b, user, video_id, "sleep", 1.0)
    # Fan-out from B cannot reach A; A's socket follows the job by asking for snapshots.
    seen: set[str] = set()

    async def gone_from_snapshot() -> bool:
        jobs = await snapshot_jobs(ws)
        if job_id in jobs:
            seen.add(jobs[job_id])
        return job_id not in jobs and bool(seen)  # unfinished jobs only: it is done

    await eventually(gone_from_snapshot, within=20, interval=0.1)
    assert seen & {"queued", "running"}
    resp = await a.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert (await resp.json())["status"] == "succeeded"
    await upload(b, user, sample_mp4)  # through the other instance too

    # Redis returns: both instances subscribe again by themselves; fan-out resumes.
    own_redis.start()
    await eventually(lambda: answers(own_redis.url))
    for bus in buses:
        await asyncio.wait_for(bus.subscribed.wait(), 15)
    job_id = await post_job(b, user, video_id, "sleep", 0.2)
    events = await events_until(ws, lambda e: e.get("job_id") == job_id and e["type"] in FINISHED)
    kinds = [e["type"] for e in events if e.get("job_id") == job_id]
    assert kinds[0] == "job.queued" and "job.started" in kinds and kinds[-1] == "job.succeeded"
    await ws.close()
