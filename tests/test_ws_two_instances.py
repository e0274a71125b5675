"""Two app instances share one PostgreSQL, one Redis and one object store: a WebSocket
on instance A follows a job that instance B runs, and is closed by a logout on B,
through Redis pub/sub."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.live.bus import RedisBus
from tests.conftest import register_and_login, truncate_all
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


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    return url


async def test_a_socket_on_one_instance_follows_a_job_run_by_another(
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    database_url: str,
    redis_url: str,
    sample_mp4: Path,
) -> None:
    # Same data dir: the local object store is what the two instances share here.
    settings = live_settings(make_settings, redis_url=redis_url)
    app_a = create_app(settings)  # API only: its runner never claims
    app_b = with_fake_runner(create_app(settings), settings, database_url)
    a = await aiohttp_client(app_a)
    b = await aiohttp_client(app_b)
    await truncate_all(app_a)
    for app in (app_a, app_b):
        bus = app[appkeys.BUS]
        assert isinstance(bus, RedisBus)
        await bus.subscribed.wait()

    user = await register_and_login(a)
    ws, _ = await open_socket(a, user)
    video_id = await upload(a, user, sample_mp4)  # video.ready: A's own, delivered locally
    assert (await ws.receive_json(timeout=5))["type"] == "video.ready"

    job_id = await post_job(b, user, video_id, "sleep", 1.0)
    events = await events_until(ws, lambda e: e["type"] in FINISHED)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["job.queued", "job.started"] and kinds[-1] == "job.succeeded"
    assert {e["job_id"] for e in events} == {job_id}
    # ...and it was B that ran it.
    resp = await a.get(f"/api/v1/jobs/{job_id}/events", headers=user.headers)
    assert resp.status == 200, await resp.text()
    workers = {e["worker_id"] for e in (await resp.json())["items"]}
    assert workers == {app_b[appkeys.RUNNER].worker_id}
    await ws.close()


async def test_logout_on_one_instance_closes_the_sessions_socket_on_another(
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    redis_url: str,
) -> None:
    settings = live_settings(make_settings, redis_url=redis_url)
    app_a, app_b = create_app(settings), create_app(settings)
    a = await aiohttp_client(app_a)
    b = await aiohttp_client(app_b)
    await truncate_all(app_a)
    for app in (app_a, app_b):
        bus = app[appkeys.BUS]
        assert isinstance(bus, RedisBus)
        await bus.subscribed.wait()

    user = await register_and_login(a)
    ws, _ = await open_socket(a, user)
    resp = await b.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")


async def test_disabling_on_one_instance_closes_the_accounts_sockets_on_another(
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    redis_url: str,
) -> None:
    from tests.test_admin import make_admin

    settings = live_settings(make_settings, redis_url=redis_url)
    app_a, app_b = create_app(settings), create_app(settings)
    a = await aiohttp_client(app_a)
    b = await aiohttp_client(app_b)
    await truncate_all(app_a)
    for app in (app_a, app_b):
        bus = app[appkeys.BUS]
        assert isinstance(bus, RedisBus)
        await bus.subscribed.wait()

    user = await register_and_login(a)
    admin = await make_admin(b, settings)
    ws, _ = await open_socket(a, user)
    resp = await b.post(f"/api/v1/admin/users/{user.id}/disable", headers=admin.headers)
    assert resp.status == 200
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
