"""The metrics an operator scales and alerts on: the queue by status and operation,
job durations, ffmpeg processes, WebSockets and the database pool; and the
example alert rules, checked and unit-tested by promtool."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.app import create_app
from tests.conftest import register_and_login, truncate_all
from tests.fake_operations import fake_operations

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = Path(__file__).parent / "fixtures" / "alerts_test.yml"


async def scrape(client: TestClient[Any, Any]) -> dict[str, float]:
    """`name{labels}` → value, labels in the order the exposition gives them."""
    text = await (await client.get("/metrics")).text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


async def upload(client: TestClient[Any, Any], headers: dict[str, str], clip: Path) -> str:
    resp = await client.put(f"/api/v1/uploads/{clip.name}", data=clip.read_bytes(), headers=headers)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def test_queue_sockets_and_pool_are_on_metrics(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient, sample_mp4: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(role="api")))
    await truncate_all(client.app)
    user = await register_and_login(client)
    video_id = await upload(client, user.headers, sample_mp4)
    for operation in ("thumbnail", "thumbnail", "transcode"):
        resp = await client.post(
            f"/api/v1/videos/{video_id}/jobs", json={"operation": operation}, headers=user.headers
        )
        assert resp.status == 202, await resp.text()
    ws = await client.ws_connect("/api/v1/ws")
    values = await scrape(client)
    assert values['frameflow_jobs{operation="thumbnail",status="queued"}'] == 2
    assert values['frameflow_jobs{operation="transcode",status="queued"}'] == 1
    assert values["frameflow_websocket_connections"] == 1
    in_use = values['frameflow_db_pool_connections{state="in_use"}']
    idle = values['frameflow_db_pool_connections{state="idle"}']
    assert in_use >= 0 and idle >= 1
    assert in_use + idle <= values["frameflow_db_pool_max_connections"]
    await ws.close()
    async with asyncio.timeout(5):
        while True:
            if (await scrape(client))["frameflow_websocket_connections"] == 0:
                break
            await asyncio.sleep(0.05)


async def test_job_durations_and_ffmpeg_processes_are_measured(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient, sample_mp4: Path
) -> None:
    settings = make_settings(job_poll_seconds=0.2, worker_concurrency=1)
    client = await aiohttp_client(create_app(settings, operations=fake_operations()))
    await truncate_all(client.app)
    user = await register_and_login(client)
    video_id = await upload(client, user.headers, sample_mp4)
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs",
        json={"operation": "sleep", "params": {"seconds": 1.5}},
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    seen_running = seen_ffmpeg = False
    async with asyncio.timeout(30):
        while True:
            values = await scrape(client)
            seen_running |= values.get('frameflow_jobs{operation="sleep",status="running"}') == 1
            seen_ffmpeg |= values["frameflow_ffmpeg_processes"] >= 1
            job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)).json()
            if job["finished_at"]:
                break
            await asyncio.sleep(0.05)
    assert job["status"] == "succeeded"
    assert seen_running and seen_ffmpeg
    values = await scrape(client)
    key = 'frameflow_job_duration_seconds_count{operation="sleep",outcome="succeeded"}'
    assert values[key] == 1
    assert values[key.replace("_count", "_sum")] > 0.5
    assert values["frameflow_ffmpeg_processes"] == 0
    assert not any(k.startswith("frameflow_jobs{") for k in values), "the queue is empty"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: Debian package `prometheus` (scripts/test installs it)")
    return promtool


def test_the_alert_rules_are_valid_and_fire_when_they_should() -> None:
    promtool = _promtool()
    for argv in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS_TEST)]):
        result = subprocess.run(
            [promtool, *argv], capture_output=True, timeout=60, check=False, cwd=ALERTS_TEST.parent
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_alert_rules_only_use_metrics_that_exist() -> None:
    names = set(re.findall(r"\bframeflow_[a-z_]+", ALERTS.read_text()))
    source = (ROOT / "server" / "metrics.py").read_text()
    suffixes = ("_bucket", "_count", "_sum", "_total")
    for name in names:
        base = next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name)
        assert f'"{base}"' in source, name
