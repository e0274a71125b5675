"""Real worker processes killed with SIGKILL: the job runs again elsewhere, and a job
that kills every worker ends failed after its attempts instead of looping."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.db.migrate import migrate
from server.db.pool import create_pool
from tests.conftest import _admin, _with_database
from tests.fake_operations import CRASH_ENV

ROOT = Path(__file__).resolve().parents[1]
FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    """A database of its own: no other test's jobs for these workers to pick up."""
    name = f"frameflow_crash_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Workers:
    """Starts `tests/job_worker.py` processes; kills whatever is left at the end."""

    def __init__(self, database_url: str, data_dir: Path, log_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEFLOW_")}
        self.env.update(
            {
                "FRAMEFLOW_DATABASE_URL": database_url,
                "FRAMEFLOW_DATA_DIR": str(data_dir),
                "FRAMEFLOW_LOG_LEVEL": "warning",
                "FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD": "false",
                "FRAMEFLOW_JOB_LEASE_SECONDS": "2",
                "FRAMEFLOW_JOB_HEARTBEAT_SECONDS": "0.5",
                "FRAMEFLOW_JOB_POLL_SECONDS": "0.5",
                "FRAMEFLOW_WORKER_CONCURRENCY": "1",
            }
        )
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        """A worker that listens for jobs (or already died of one), and its worker id."""
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.job_worker"],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        async with asyncio.timeout(30):
            while True:
                lines = log.read_text(errors="replace").splitlines()
                worker_id = next((ln.split()[1] for ln in lines if ln.startswith("worker ")), None)
                if worker_id and ("ready" in lines or proc.poll() is not None):
                    return proc, worker_id
                if proc.poll() is not None:
                    pytest.fail("worker exited early:\n" + "\n".join(lines))
                await asyncio.sleep(0.05)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
async def workers(fresh_database: str, tmp_path: Path) -> AsyncIterator[Workers]:
    group = Workers(fresh_database, tmp_path / "data", tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
async def db(workers: Workers, fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_database, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()


async def add_job(pool: asyncpg.Pool, operation: str, **params: Any) -> tuple[uuid.UUID, str]:
    """A user, a video row and a queued job; returns the job id and its output prefix."""
    user_id = await pool.fetchval(
        "INSERT INTO users (email, password_hash, quota_bytes) VALUES ($1, 'x', 1e9) RETURNING id",
        f"c-{uuid.uuid4().hex[:8]}@example.com",
    )
    video_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO videos (id, user_id, filename, storage_key, size, sha256, content_type,
                               kind, metadata)
           VALUES ($1, $2, 'v.mp4', $3, 1, '', 'video/mp4', 'video', '{"duration": 2.0}')""",
        video_id,
        user_id,
        f"videos/{user_id}/{video_id}/source",
    )
    job_id = await pool.fetchval(
        """INSERT INTO jobs (id, user_id, video_id, operation, params, max_attempts)
           VALUES (gen_random_uuid(), $1, $2, $3, $4, 2) RETURNING id""",
        user_id,
        video_id,
        operation,
        params,
    )
    await pool.execute("SELECT pg_notify('frameflow_jobs', '')")
    return job_id, f"videos/{user_id}/{video_id}/jobs/{job_id}/"


async def job_row(pool: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def wait_for_job(
    pool: asyncpg.Pool, job_id: uuid.UUID, check: Callable[[asyncpg.Record], bool], within: float
) -> asyncpg.Record:
    async with asyncio.timeout(within):
        while True:
            if check(job := await job_row(pool, job_id)):
                return job
            await asyncio.sleep(0.05)


async def events(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT attempt, worker_id, outcome FROM job_events WHERE job_id = $1 ORDER BY attempt",
        job_id,
    )
    return [tuple(r) for r in rows]


async def test_sigkilled_worker_job_runs_again_and_succeeds(
    workers: Workers, db: asyncpg.Pool, tmp_path: Path
) -> None:
    first, first_id = await workers.start()
    job_id, prefix = await add_job(db, "sleep", seconds=3)
    await wait_for_job(db, job_id, lambda j: j["progress"] > 0, within=15)
    first.send_signal(signal.SIGKILL)  # mid-job: no cleanup, no goodbye
    first.wait(10)
    assert (await job_row(db, job_id))["status"] == "running"  # its lease still looks alive

    second, second_id = await workers.start()
    started = time.monotonic()
    job = await wait_for_job(db, job_id, lambda j: j["status"] in FINISHED, within=40)
    assert (job["status"], job["attempts"], job["error"]) == ("succeeded", 2, None)
    # Lease (2 s) + poll + the 3 s job; the bound is a hang guard for loaded machines.
    assert time.monotonic() - started < 40
    assert await events(db, job_id) == [
        (1, first_id, "lease_expired"),
        (2, second_id, "succeeded"),
    ]
    names = {
        r["name"] for r in await db.fetch("SELECT name FROM job_outputs WHERE job_id = $1", job_id)
    }
    assert names == {"part-1.txt", "result.txt"}
    objects = tmp_path / "data" / "objects" / prefix
    assert sorted(p.name for p in objects.iterdir()) == ["part-1.txt", "result.txt"]

    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0


async def test_job_that_always_crashes_its_worker_ends_failed(
    workers: Workers, db: asyncpg.Pool
) -> None:
    job_id, _prefix = await add_job(db, "crash")
    crashed: list[str] = []
    async with asyncio.timeout(40):
        while True:
            proc, worker_id = await workers.start(**{CRASH_ENV: "1"})
            while proc.poll() is None:
                if (await job_row(db, job_id))["status"] in FINISHED:
                    break
                await asyncio.sleep(0.1)
            if proc.returncode is not None:
                assert proc.returncode == -signal.SIGKILL
                crashed.append(worker_id)
                continue
            break  # the job ended while this worker was alive
    job = await job_row(db, job_id)
    assert (job["status"], job["attempts"]) == ("failed", 2)
    assert job["error"] == "lease expired after 2 attempts"
    assert await events(db, job_id) == [
        (1, crashed[0], "lease_expired"),
        (2, crashed[1], "lease_expired"),
    ]
    assert len(crashed) == 2  # it never looped
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
