"""The job engine against real PostgreSQL and real ffmpeg: queue order, SKIP LOCKED,
transitions, progress, cancel, timeouts, leases, bounded attempts, graceful stop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.db import jobs as jobs_db
from server.db import users as users_db
from server.db import videos as videos_db
from server.errors import Conflict
from server.jobs import state
from server.jobs.model import Job
from server.jobs.runner import JobRunner, output_prefix
from tests.fake_operations import fake_operations

# Short leases and polls so lease expiry and retries take a second, not minutes.
FAST: dict[str, Any] = {
    "job_lease_seconds": 2.0,
    "job_heartbeat_seconds": 0.5,
    "job_poll_seconds": 0.5,
    "worker_concurrency": 2,
    # The app's own runner (if wired) stays idle: these tests bring theirs.
    "workers_enabled": False,
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST)


class Recorder:
    """A `publish` callback that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Job]] = []

    async def __call__(self, event: str, job: Job) -> None:
        self.events.append((event, job))

    def of(self, job_id: uuid.UUID) -> list[tuple[str, Job]]:
        return [(e, j) for e, j in self.events if j.id == job_id]


@dataclasses.dataclass
class Engine:
    app: web.Application
    pool: asyncpg.Pool
    database_url: str
    user_id: uuid.UUID
    video_id: uuid.UUID
    runners: list[JobRunner]
    recorder: Recorder

    @property
    def settings(self) -> Settings:
        return self.app[appkeys.SETTINGS]

    async def runner(self, *, dsn: bool = True, **overrides: Any) -> JobRunner:
        settings = dataclasses.replace(self.settings, workers_enabled=True, **overrides)
        runner = JobRunner(
            pool=self.pool,
            storage=self.app[appkeys.STORAGE],
            settings=settings,
            ffmpeg=self.app[appkeys.FFMPEG],
            operations=fake_operations(),
            dsn=self.database_url if dsn else None,
            publish=self.recorder,
        )
        self.runners.append(runner)
        await runner.start()
        await asyncio.wait_for(runner.listening.wait(), 10)
        return runner

    async def add_job(
        self, operation: str, *, priority: int = 0, max_attempts: int = 3, **params: Any
    ) -> Job:
        async with self.pool.acquire() as conn:
            job = await jobs_db.insert_job(
                conn,
                user_id=self.user_id,
                video_id=self.video_id,
                operation=operation,
                params=params,
                priority=priority,
                max_attempts=max_attempts,
            )
            await jobs_db.notify_new_job(conn)
        return job

    async def job(self, job_id: uuid.UUID) -> Job:
        async with self.pool.acquire() as conn:
            job = await jobs_db.get_job(conn, job_id, None)
        assert job is not None
        return job

    async def wait(
        self, job_id: uuid.UUID, check: Callable[[Job], bool], within: float = 15
    ) -> Job:
        async with asyncio.timeout(within):
            while True:
                if check(job := await self.job(job_id)):
                    return job
                await asyncio.sleep(0.05)

    async def finished(self, job_id: uuid.UUID, within: float = 15) -> Job:
        return await self.wait(job_id, lambda j: j.finished_at is not None, within)

    def stored(self, job: Job) -> list[Path]:
        root = self.settings.data_dir / "objects" / output_prefix(job)
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    async def events(self, job_id: uuid.UUID) -> list[Any]:
        async with self.pool.acquire() as conn:
            return await jobs_db.list_events(conn, job_id)


@pytest.fixture
async def engine(
    client: TestClient[Any, Any], app: web.Application, database_url: str
) -> AsyncIterator[Engine]:
    pool = app[appkeys.POOL]
    async with pool.acquire() as conn:
        user = await users_db.insert_user(
            conn,
            email=f"e-{uuid.uuid4().hex[:8]}@example.com",
            password_hash="x",
            quota_bytes=10**9,
        )
        video_id = uuid.uuid4()
        await videos_db.insert_video(
            conn,
            id=video_id,
            user_id=user.id,
            filename="v.mp4",
            storage_key=f"videos/{user.id}/{video_id}/source",
            size=1000,
            sha256="0" * 64,
            content_type="video/mp4",
            kind="video",
            metadata={"duration": 2.0},
        )
    eng = Engine(app, pool, database_url, user.id, video_id, [], Recorder())
    yield eng
    for runner in eng.runners:
        await runner.stop()
    leaked = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("job")]
    assert leaked == [], "stop() must end every task it started"


LISTENERS = """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND query LIKE 'LISTEN%'"""


def ffmpeg_children() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:  # gone meanwhile
            pass
    return found


async def until(check: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def claim(pool: asyncpg.Pool, worker: str = "w1", lease: float = 30.0) -> Job | None:
    async with pool.acquire() as conn:
        return await state.claim(conn, worker, lease)


# --- the queue ----------------------------------------------------------------------


async def test_claim_order_is_priority_then_fifo(engine: Engine) -> None:
    a = await engine.add_job("ramp", priority=0)
    b = await engine.add_job("ramp", priority=5)
    c = await engine.add_job("ramp", priority=0)
    d = await engine.add_job("ramp", priority=5)
    e = await engine.add_job("ramp", priority=-1)
    claimed = [await claim(engine.pool) for _ in range(6)]
    assert [j.id if j else None for j in claimed] == [b.id, d.id, a.id, c.id, e.id, None]
    first = claimed[0]
    assert first is not None
    assert (first.status, first.attempts, first.worker_id) == ("running", 1, "w1")
    assert first.lease_expires_at is not None and first.started_at is not None
    [event] = await engine.events(first.id)
    assert (event.attempt, event.worker_id, event.outcome) == (1, "w1", None)


async def test_concurrent_claimers_never_claim_one_job_twice(engine: Engine) -> None:
    jobs = [await engine.add_job("ramp") for _ in range(30)]

    async def claimer(name: str) -> list[uuid.UUID]:
        got = []
        while job := await claim(engine.pool, name):
            got.append(job.id)
        return got

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(6)))
    claimed = [job_id for ids in results for job_id in ids]
    assert sorted(claimed) == sorted(j.id for j in jobs)  # each exactly once
    assert sum(1 for ids in results if ids) > 1  # they really ran side by side
    async with engine.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM job_events") == 30


async def test_twenty_runners_run_a_thousand_jobs_each_exactly_once(engine: Engine) -> None:
    """Exactly once under contention, counted from the processing history: every job
    has one attempt, claimed by one runner and closed as succeeded, and no other."""
    total, claimers = 1000, 20
    async with engine.pool.acquire() as conn, conn.transaction():
        for _ in range(total):
            await jobs_db.insert_job(
                conn,
                user_id=engine.user_id,
                video_id=engine.video_id,
                operation="noop",
                params={},
                priority=0,
                max_attempts=3,
            )
    started = time.monotonic()
    runners = [
        await engine.runner(worker_concurrency=1, job_poll_seconds=0.2) for _ in range(claimers)
    ]
    async with asyncio.timeout(120):
        while True:
            async with engine.pool.acquire() as conn:
                open_jobs = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE finished_at IS NULL"
                )
            if open_jobs == 0:
                break
            await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    async with engine.pool.acquire() as conn:
        statuses = await conn.fetch("SELECT status, attempts, count(*) FROM jobs GROUP BY 1, 2")
        history = await conn.fetch(
            """SELECT job_id, count(*) AS attempts, min(outcome) AS outcome,
                      min(worker_id) AS worker_id, bool_and(ended_at IS NOT NULL) AS closed
               FROM job_events GROUP BY job_id"""
        )
    assert [tuple(r) for r in statuses] == [("succeeded", 1, total)]
    assert len(history) == total
    assert {(r["attempts"], r["outcome"], r["closed"]) for r in history} == {(1, "succeeded", True)}
    assert sum(1 for _ in engine.recorder.events if _[0] == "job.started") == total
    by_worker = {r["worker_id"] for r in history}
    assert by_worker <= {r.worker_id for r in runners}
    assert len(by_worker) > claimers // 2, "the work must really be shared"
    print(f"{total} jobs, {claimers} runners: {elapsed:.1f} s")


# --- transitions --------------------------------------------------------------------


def test_transition_table() -> None:
    allowed = {(s, t) for s in state_names() for t in state_names() if (s, t) in state.TRANSITIONS}
    assert allowed == {
        ("queued", "running"),
        ("queued", "canceled"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "canceled"),
        ("running", "queued"),
    }


def state_names() -> tuple[str, ...]:
    from server.jobs.model import STATUSES

    return STATUSES


async def test_illegal_and_stale_transitions_are_refused(engine: Engine) -> None:
    queued = await engine.add_job("ramp")
    async with engine.pool.acquire() as conn:
        with pytest.raises(state.IllegalTransition):
            await state.succeed(conn, queued, "w1", [])
        running = await state.claim(conn, "w1", 30)
        assert running is not None
        done = await state.fail(conn, running, "w1", "broken")
        assert done is not None and done.status == "failed"
        with pytest.raises(state.IllegalTransition):
            await state.requeue(conn, done, "w1", charge_attempt=True, reason="again")
        # A worker that is not (or no longer) the owner changes nothing.
        other = await engine.add_job("ramp")
        mine = await state.claim(conn, "w1", 30)
        assert mine is not None and mine.id == other.id
        assert await state.succeed(conn, mine, "w2", []) is None
        await conn.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE status = 'running'"
        )
        [requeued] = await state.requeue_expired_leases(conn)
        assert requeued.status == "queued"
        assert await state.succeed(conn, mine, "w1", []) is None  # stale attempt
        assert (await engine.job(mine.id)).status == "queued"
        with pytest.raises(Conflict) as finished:
            await state.request_cancel(conn, done.id, engine.user_id)
        assert finished.value.error_code == "job_finished"


# --- running jobs ----------------------------------------------------------------------


async def test_sleep_job_succeeds_with_outputs_usage_and_history(engine: Engine) -> None:
    runner = await engine.runner()
    job = await engine.add_job("sleep", seconds=1)
    done = await engine.finished(job.id)
    assert (done.status, done.progress, done.error, done.attempts) == ("succeeded", 100, None, 1)
    async with engine.pool.acquire() as conn:
        outputs = await jobs_db.list_outputs(conn, job.id)
        used = await conn.fetchval("SELECT used_bytes FROM users WHERE id = $1", engine.user_id)
    assert [o.name for o in outputs] == ["part-1.txt", "result.txt"]
    assert used == sum(o.size for o in outputs)
    assert len(engine.stored(job)) == 2
    [event] = await engine.events(job.id)
    assert (event.worker_id, event.outcome) == (runner.worker_id, "succeeded")
    assert event.ended_at is not None
    kinds = [e for e, _ in engine.recorder.of(job.id)]
    assert kinds[0] == "job.started" and kinds[-1] == "job.succeeded"
    assert "job.progress" in kinds
    assert not (engine.settings.data_dir / "work" / f"{job.id}-1").exists()


async def test_progress_is_monotonic_and_throttled(engine: Engine) -> None:
    await engine.runner(dsn=False)  # also: LISTEN on a connection of the pool
    job = await engine.add_job("ramp", seconds=1.5)
    started = time.monotonic()
    done = await engine.finished(job.id)
    elapsed = time.monotonic() - started
    assert done.status == "succeeded"
    values = [j.progress for e, j in engine.recorder.of(job.id) if e == "job.progress"]
    assert values == sorted(values) and len(set(values)) == len(values)
    # 400 reports over ~1.5 s arrive as at most ~4 publications a second.
    assert 2 <= len(values) <= elapsed / 0.25 + 2
    assert values[-1] == 100  # the last value is never swallowed by the throttle
    final_event, final = engine.recorder.of(job.id)[-1]
    assert (final_event, final.progress) == ("job.succeeded", 100)


async def test_concurrency_is_bounded_by_the_semaphore(engine: Engine) -> None:
    await engine.runner(worker_concurrency=2)
    jobs = [await engine.add_job("ramp", seconds=0.6) for _ in range(5)]
    most = 0
    async with asyncio.timeout(15):
        while True:
            async with engine.pool.acquire() as conn:
                running = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'")
                left = await conn.fetchval("SELECT count(*) FROM jobs WHERE finished_at IS NULL")
            most = max(most, running)
            if left == 0:
                break
            await asyncio.sleep(0.05)
    assert most == 2
    assert {(await engine.job(j.id)).status for j in jobs} == {"succeeded"}


async def test_failures_delete_partial_outputs_and_say_why(engine: Engine) -> None:
    await engine.runner()
    failing = await engine.add_job("fail")
    buggy = await engine.add_job("boom")
    failed = await engine.finished(failing.id)
    assert (failed.status, failed.error) == (
        "failed",
        "fake failure: the input is not what it claims",
    )
    assert engine.stored(failing) == []
    crashed = await engine.finished(buggy.id)
    assert (crashed.status, crashed.error) == ("failed", "internal error")  # no internals leak
    [event] = await engine.events(failing.id)
    assert (event.outcome, event.error) == ("failed", failed.error)
    assert engine.recorder.of(failing.id)[-1][0] == "job.failed"


# --- cancel ------------------------------------------------------------------------------


async def test_cancel_of_running_job_kills_ffmpeg_and_removes_outputs(engine: Engine) -> None:
    await engine.runner()
    job = await engine.add_job("sleep", seconds=30)
    await engine.wait(job.id, lambda j: j.progress > 0)
    assert engine.stored(job), "the partial output was written"
    [ffmpeg] = ffmpeg_children()

    async with engine.pool.acquire() as conn:
        flagged = await state.request_cancel(conn, job.id, engine.user_id)
    assert (flagged.status, flagged.cancel_requested) == ("running", True)
    started = time.monotonic()
    done = await engine.finished(job.id, within=20)
    assert done.status == "canceled"
    # A hang guard, not a speed test (shared machines): far below the job's 30 s.
    assert time.monotonic() - started < 20
    assert not ffmpeg.is_running() or ffmpeg.status() == psutil.STATUS_ZOMBIE
    assert ffmpeg_children() == []
    assert engine.stored(job) == []
    [event] = await engine.events(job.id)
    assert event.outcome == "canceled"
    assert engine.recorder.of(job.id)[-1][0] == "job.canceled"


async def test_cancel_of_queued_job_is_immediate(engine: Engine) -> None:
    job = await engine.add_job("sleep")
    async with engine.pool.acquire() as conn:
        canceled = await state.request_cancel(conn, job.id, engine.user_id)
        assert (canceled.status, canceled.finished_at is not None) == ("canceled", True)
        assert await state.claim(conn, "w1", 30) is None
        with pytest.raises(Conflict):
            await state.request_cancel(conn, job.id, engine.user_id)


# --- timeouts ------------------------------------------------------------------------------


async def test_wall_clock_timeout_fails_the_job(engine: Engine) -> None:
    await engine.runner(job_timeout_base_seconds=1.0, job_timeout_per_media_second=0.5)
    job = await engine.add_job("sleep", seconds=30)
    done = await engine.finished(job.id, within=10)
    # 1 s + 0.5 s per second of the 2 s input.
    assert (done.status, done.error) == ("failed", "timed out after 2 s")
    assert engine.stored(job) == []
    assert ffmpeg_children() == []


async def test_stalled_ffmpeg_fails_the_job(engine: Engine) -> None:
    await engine.runner(job_stall_seconds=1.0)
    job = await engine.add_job("stall")
    done = await engine.finished(job.id, within=10)
    assert (done.status, done.error) == ("failed", "no progress for 1 s")
    assert ffmpeg_children() == []  # blocked in open(): SIGTERM is not enough, SIGKILL was sent


# --- leases and attempts -----------------------------------------------------------------------


async def test_expired_lease_is_requeued_and_run_again(engine: Engine) -> None:
    job = await engine.add_job("sleep", seconds=0.5)
    assert await claim(engine.pool, "dead-worker", lease=0.5) is not None  # then it "dies"
    runner = await engine.runner()
    done = await engine.finished(job.id)
    assert (done.status, done.attempts) == ("succeeded", 2)
    first, second = await engine.events(job.id)
    assert (first.worker_id, first.outcome, first.error) == (
        "dead-worker",
        "lease_expired",
        "lease expired",
    )
    assert (second.worker_id, second.outcome) == (runner.worker_id, "succeeded")
    assert "job.queued" in [e for e, _ in engine.recorder.of(job.id)]


async def test_attempts_are_bounded(engine: Engine) -> None:
    job = await engine.add_job("crash", max_attempts=2)
    for worker in ("dead-1", "dead-2"):
        assert await claim(engine.pool, worker, lease=0.1) is not None
        await asyncio.sleep(0.15)
        async with engine.pool.acquire() as conn:
            [reaped] = await state.requeue_expired_leases(conn)
    assert (reaped.status, reaped.error) == ("failed", "lease expired after 2 attempts")
    assert await claim(engine.pool) is None  # never loops
    assert [e.outcome for e in await engine.events(job.id)] == ["lease_expired"] * 2


async def test_expired_lease_of_a_canceled_job_ends_canceled(engine: Engine) -> None:
    job = await engine.add_job("sleep")
    assert await claim(engine.pool, "dead", lease=0.1) is not None
    async with engine.pool.acquire() as conn:
        await state.request_cancel(conn, job.id, engine.user_id)
        await asyncio.sleep(0.15)
        [reaped] = await state.requeue_expired_leases(conn)
    assert reaped.status == "canceled"


async def test_heartbeat_keeps_a_long_job_and_stops_a_lost_one(engine: Engine) -> None:
    runner = await engine.runner(job_lease_seconds=2.0, job_heartbeat_seconds=0.5)
    job = await engine.add_job("sleep", seconds=30)
    await engine.wait(job.id, lambda j: j.progress > 0)
    await asyncio.sleep(2.5)  # longer than one lease: only the heartbeat keeps it
    assert (await engine.job(job.id)).status == "running"
    # As if the lease had lapsed, been reaped and the job finished elsewhere.
    async with engine.pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 s'")
        await state.requeue_expired_leases(conn)
        await conn.execute("UPDATE jobs SET status = 'canceled', finished_at = now()")
    await until(lambda: not runner._attempts, within=8)
    assert ffmpeg_children() == []


# --- shutdown and the listener ---------------------------------------------------------------


async def test_graceful_stop_requeues_without_charging_an_attempt(engine: Engine) -> None:
    runner = await engine.runner()
    job = await engine.add_job("sleep", seconds=30)
    await engine.wait(job.id, lambda j: j.progress > 0)
    started = time.monotonic()
    await runner.stop()
    assert time.monotonic() - started < 20  # hang guard: far below the job's 30 s
    requeued = await engine.job(job.id)
    assert (requeued.status, requeued.attempts, requeued.max_attempts) == ("queued", 1, 4)
    assert requeued.worker_id is None and requeued.progress == 0
    assert ffmpeg_children() == []
    assert engine.stored(job) == []
    [event] = await engine.events(job.id)
    assert (event.outcome, event.error) == ("retry", "worker shut down")
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("job")] == []
    async with asyncio.timeout(5):  # the LISTEN connection is closed, not left to the server
        while True:
            if not await engine.pool.fetchval(LISTENERS):
                break
            await asyncio.sleep(0.05)
    again = await claim(engine.pool, "next")
    assert again is not None and again.attempts == 2
    assert [e.attempt for e in await engine.events(job.id)] == [1, 2]


async def test_listener_reconnects_and_notify_wakes_the_runner(engine: Engine) -> None:
    runner = await engine.runner(job_poll_seconds=60.0)  # only NOTIFY can wake it in time
    async with engine.pool.acquire() as conn:
        killed = await conn.fetchval(
            LISTENERS.replace("count(*)", "count(pg_terminate_backend(pid))")
        )
    assert killed == 1
    await until(lambda: not runner.listening.is_set(), within=5)
    await asyncio.wait_for(runner.listening.wait(), 5)
    job = await engine.add_job("ramp", seconds=0.2)
    done = await engine.finished(job.id, within=5)
    assert done.status == "succeeded"
