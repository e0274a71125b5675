"""Failure drill: PostgreSQL restarted under load. While it is down `/health/ready`
says 503 and requests fail fast with 503 `database_unavailable` (no hang, no 500);
once it is back the pool recovers by itself, and every upload and job that was
acknowledged (201/202) is still there and every job finishes.

The database is the test's own pgserver instance (tests/restartable_postgres.py),
never CI's shared server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.database_down import DatabaseUnreachable, database_down
from tests.conftest import register_and_login
from tests.notify_helpers import FAST_JOBS, app_with_fake_runner, eventually
from tests.restartable_postgres import RestartablePostgres

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
# Seconds: "fails fast" (a refused connection answers at once) with room for a loaded
# machine, still far below the 60 s a hanging pool or a proxy timeout would take.
FAST = 10.0


@pytest.fixture
def postgres() -> Iterator[RestartablePostgres]:
    with RestartablePostgres.in_temp_dir() as server:
        yield server


class Load:
    """Clients uploading and queueing jobs in a loop, keeping what was acknowledged."""

    def __init__(self, client: TestClient[Any, Any], headers: dict[str, str], body: bytes) -> None:
        self.client = client
        self.headers = headers
        self.body = body
        self.videos: list[str] = []
        self.jobs: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.slowest = 0.0
        self.running = True

    async def _timed(self, method: str, url: str, **kw: Any) -> tuple[int, Any]:
        started = time.monotonic()
        async with self.client.request(method, url, headers=self.headers, **kw) as resp:
            body = await resp.json()
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses[resp.status] += 1
            if resp.status == 503:
                assert body["error"]["code"] == "database_unavailable", body
                assert resp.headers["Retry-After"]
            return resp.status, body

    async def run(self) -> None:
        while self.running:
            status, body = await self._timed("PUT", "/api/v1/uploads/a.mp4", data=self.body)
            if status == 201:
                self.videos.append(body["id"])
                status, body = await self._timed(
                    "POST",
                    f"/api/v1/videos/{body['id']}/jobs",
                    json={"operation": "sleep", "params": {"seconds": 0.05}},
                )
                if status == 202:
                    self.jobs.append(body["id"])
            await asyncio.sleep(0.02)


async def test_postgres_restarted_under_load(
    postgres: RestartablePostgres,
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    sample_mp4: Path,
) -> None:
    settings = make_settings(database_url=postgres.url, **FAST_JOBS)
    client = await aiohttp_client(app_with_fake_runner(settings, postgres.url))
    user = await register_and_login(client)
    load = Load(client, user.headers, sample_mp4.read_bytes())
    loops = [asyncio.create_task(load.run()) for _ in range(2)]
    try:
        await eventually(lambda: _at_least(load.jobs, 2))

        await asyncio.to_thread(postgres.stop)
        down_since = len(load.jobs)
        resp = await client.get("/health/ready")
        assert resp.status == 503
        assert (await resp.json())["checks"]["database"] == "unavailable"
        started = time.monotonic()
        resp = await client.get("/api/v1/videos", headers=user.headers)
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"]["code"] == "database_unavailable"
        assert time.monotonic() - started < FAST
        await eventually(lambda: _at_least_count(load.statuses[503], 4))

        await asyncio.to_thread(postgres.start)

        # The pool recovers by itself: no restart, no operator.
        async def ready() -> bool:
            return (await client.get("/health/ready")).status == 200

        await eventually(ready, within=15)
        await eventually(lambda: _at_least(load.jobs, down_since + 2), within=15)
    finally:
        load.running = False
        await asyncio.gather(*loops)

    assert set(load.statuses) <= {201, 202, 503}, load.statuses  # never a 500
    assert load.slowest < FAST, load.slowest
    for video_id in load.videos:
        resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
        assert resp.status == 200, video_id

    async def all_finished() -> bool:
        for job_id in load.jobs:
            resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
            if (await resp.json())["status"] != "succeeded":
                return False
        return True

    await eventually(all_finished, within=30)


async def _at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def _at_least_count(count: int, n: int) -> bool:
    return count >= n


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is what asyncpg leaves
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "down"),
    [
        (DatabaseUnreachable("refused"), True),
        (asyncpg.ConnectionDoesNotExistError("closed mid-query"), True),
        (
            _raised_from(
                asyncpg.InterfaceError("the underlying connection is closed"),
                asyncpg.ConnectionDoesNotExistError("closed mid-query"),
            ),
            True,
        ),
        (asyncpg.InterfaceError("another operation is in progress"), False),
        (asyncpg.ProtocolViolationError("bind message has 2 parameters"), False),
        (ConnectionResetError("the client hung up"), False),
    ],
)
def test_what_counts_as_the_database_being_down(exc: BaseException, down: bool) -> None:
    assert database_down(exc) is down
