"""Two instances (each its own app and pool) share one database: the cleanup sweep
runs on one of them at a time, and every mail and webhook row is sent once even
though both run a sender — counted where it arrives, at an SMTP server and an HTTP
receiver on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.cleanup.sweep import CleanupReport, run_sweep
from server.videos.service import VideoService
from tests import notify_helpers
from tests.conftest import register_and_login, truncate_all
from tests.notify_helpers import FAST_JOBS, app_with_fake_runner, eventually, upload
from tests.test_cleanup import SlowDeletes, expire
from tests.test_email import SmtpServer
from tests.test_webhooks import Receiver, register

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
JOBS = 6


smtp = notify_helpers.smtp


@pytest.fixture
def shared_settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        mail_from="Frameflow <noreply@frameflow.test>",
        public_url="https://video.example.test",
        webhook_allowed_hosts="127.0.0.1",
        **FAST_JOBS,
    )


async def two_instances(
    settings: Settings, database_url: str, aiohttp_client: MakeClient
) -> tuple[TestClient[Any, Any], TestClient[Any, Any]]:
    """A runs jobs (fake operations); both run the sweep task and both senders."""
    a = await aiohttp_client(app_with_fake_runner(settings, database_url))
    b = await aiohttp_client(create_app(settings))
    await truncate_all(a.app)
    for client in (a, b):
        # Both poll often, so that both are after the same rows.
        client.app[appkeys.OUTBOX].poll_seconds = 0.02
        client.app[appkeys.WEBHOOK_SENDER].poll_seconds = 0.02
    return a, b


async def test_each_mail_and_webhook_is_sent_once_with_two_senders(
    shared_settings: Settings,
    database_url: str,
    aiohttp_client: MakeClient,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    smtp: SmtpServer,
    sample_mp4: Path,
) -> None:
    a, b = await two_instances(shared_settings, database_url, aiohttp_client)
    receiver = Receiver()
    receiver.server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    user = await register_and_login(a)
    hook = await register(b, user, receiver.url())
    receiver.secret = hook["secret"]
    video_id = await upload(b, user, sample_mp4)

    job_ids = []
    for _ in range(JOBS):
        resp = await a.post(  # A's API knows the fake operations its runner runs
            f"/api/v1/videos/{video_id}/jobs",
            json={"operation": "sleep", "params": {"seconds": 0.05}},
            headers=user.headers,
        )
        assert resp.status == 202, await resp.text()
        job_ids.append((await resp.json())["id"])

    def job_mails() -> list[Any]:
        # Not the sign-up's verification mail: the jobs' own.
        return [m for m in smtp.inbox.messages if "/api/v1/jobs/" in m.get_content()]

    async def all_arrived() -> bool:
        return len(job_mails()) >= JOBS and len(receiver.received) >= JOBS

    await eventually(all_arrived, within=30)
    await asyncio.sleep(0.5)  # a duplicate would have arrived by now

    bodies = [m.get_content() for m in job_mails()]
    mailed = Counter(j for j in job_ids for body in bodies if f"/api/v1/jobs/{j}" in body)
    assert mailed == dict.fromkeys(job_ids, 1)
    hooked = Counter(r["body"]["data"]["job"]["id"] for r in receiver.received)
    assert hooked == dict.fromkeys(job_ids, 1)
    assert len(job_mails()) == len(receiver.received) == JOBS
    assert len({r["delivery"] for r in receiver.received}) == JOBS
    async with a.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT max(attempts) FROM notification_log") == 1
        assert await conn.fetchval("SELECT max(attempts) FROM webhook_deliveries") == 1


async def test_the_sweep_runs_on_one_instance_at_a_time(
    shared_settings: Settings,
    database_url: str,
    aiohttp_client: MakeClient,
    sample_mp4: Path,
) -> None:
    a, b = await two_instances(shared_settings, database_url, aiohttp_client)
    async with a.app[appkeys.POOL].acquire() as conn:
        await conn.execute("TRUNCATE pending_deletions")
    user = await register_and_login(a)
    ids = [await upload(a, user, sample_mp4) for _ in range(3)]
    for video_id in ids:
        await expire(a.app, video_id)

    async def sweep_on(app: web.Application) -> CleanupReport:
        slow: Any = SlowDeletes(app[appkeys.STORAGE], delay=0.3)
        videos = VideoService(
            pool=app[appkeys.POOL],
            storage=slow,
            publisher=app[appkeys.PUBLISHER],
            audit=app[appkeys.AUDIT],
        )
        return await run_sweep(app[appkeys.POOL], videos, slow, app[appkeys.SETTINGS])

    # Both instances start a pass at the same moment, each on its own pool.
    first, second = await asyncio.gather(sweep_on(a.app), sweep_on(b.app))
    ran = [r for r in (first, second) if not r.skipped]
    skipped = [r for r in (first, second) if r.skipped]
    assert len(ran) == 1 and len(skipped) == 1
    assert sorted(ran[0].video_ids) == sorted(ids)
    assert skipped[0].videos_deleted == 0 and skipped[0].video_ids == []
    # The lock is free again: the next pass on the other instance runs (and finds nothing).
    again = await sweep_on(b.app if ran[0] is first else a.app)
    assert not again.skipped and again.video_ids == []
