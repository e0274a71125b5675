"""Roles: `api` serves HTTP and queues jobs but runs none of them (no runner, no
sweep, no senders); `worker` runs them and serves only the probes and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import run
from config.settings import Settings, SettingsError
from server import appkeys
from server.app import create_app
from tests.conftest import register_and_login, truncate_all

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
BACKGROUND = (appkeys.RUNNER, appkeys.CLEANUP, appkeys.OUTBOX, appkeys.WEBHOOK_SENDER)


async def test_an_api_process_runs_nothing_in_the_background_and_still_queues_jobs(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient, sample_mp4: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(role="api")))
    await truncate_all(client.app)
    assert [key.name for key in BACKGROUND if key in client.app] == []
    user = await register_and_login(client)
    resp = await client.put(
        f"/api/v1/uploads/{sample_mp4.name}", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs", json={"operation": "thumbnail"}, headers=user.headers
    )
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    await asyncio.sleep(0.5)  # long enough for a runner, had there been one, to claim it
    resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert (await resp.json())["status"] == "queued"

    # A worker sharing the database (and, here, the data dir) runs it.
    worker = await aiohttp_client(create_app(make_settings(role="worker", job_poll_seconds=0.2)))
    assert all(key in worker.app for key in BACKGROUND)
    async with asyncio.timeout(30):
        while True:
            resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
            job = await resp.json()
            if job["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
    assert job["status"] == "succeeded", job
    resp = await client.get(f"/api/v1/jobs/{job_id}/events", headers=user.headers)
    [event] = (await resp.json())["items"]
    assert event["worker_id"] == worker.app[appkeys.RUNNER].worker_id


async def test_a_worker_process_serves_only_health_and_metrics(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(create_app(make_settings(role="worker")))
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/health/ready")).status == 200
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    assert "frameflow" in await metrics.text()
    for path in ("/api/v1/videos", "/api/v1/auth/login", "/api/v1/operations", "/"):
        assert (await client.get(path)).status == 404, path
    resp = await client.post("/api/v1/auth/register", json={"email": "a@b.cd", "password": "x"})
    assert resp.status == 404


def test_the_role_comes_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = run._parser().parse_args(["--role", "worker"])
    assert run._settings(args).role == "worker"
    monkeypatch.setenv("FRAMEFLOW_ROLE", "api")
    assert run._settings(run._parser().parse_args([])).role == "api"
    assert run._settings(args).role == "worker"  # the flag wins
    with pytest.raises(SettingsError, match="FRAMEFLOW_ROLE"):
        Settings(role="both")
