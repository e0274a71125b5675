"""`JobRunner`: claims jobs from PostgreSQL and runs their operations.

One runner per process, started and stopped from a `cleanup_ctx`. Its
background tasks:

- the claim loop: when a slot of the semaphore is free, claim the next queued
  job (`FOR UPDATE SKIP LOCKED`), woken by NOTIFY or else every poll interval;
- a LISTEN connection (reconnected when it drops) for new work and cancels;
- the heartbeat: renews the leases of this runner's jobs and learns of cancels
  and of jobs it has lost;
- the lease reaper: re-queues (or fails, once attempts are used up) jobs whose
  worker died, whichever instance that was.

Each attempt runs `operation.run(ctx)` in a task watched for a wall-clock
timeout, a no-progress timeout, a cancel, a lost lease and shutdown. Partial
outputs are deleted before a failed or canceled status is written; outputs
and the succeeded status commit in one transaction (`state.succeed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from opentelemetry import trace

from config.settings import Settings
from server import data_dirs, scratch
from server.db import jobs as jobs_db
from server.db import videos as videos_db
from server.db import workers as workers_db
from server.errors import HTTPError
from server.jobs import state
from server.jobs.context import JobContext
from server.jobs.model import QUEUED, Job, OutputFile
from server.jobs.operations.protocol import Operation, OperationFailed
from server.live.events import JobEventType, status_event
from server.logs import get_logger
from server.media.process import FfmpegError
from server.media.sandbox import NO_SANDBOX, Sandbox
from server.metrics import Metrics
from server.object_keys import sourceless_job_prefix, video_prefix
from server.storage.base import Storage
from server.tracing import TRACER, SpanKind, context_from_traceparent, mark_error, untraced
from server.videos.model import Video

log = get_logger("frameflow.jobs")

Publish = Callable[[JobEventType, Job], Awaitable[None]]

# Progress is written and published at most this often per job (~4/s).
PROGRESS_INTERVAL_SECONDS = 0.25
# On shutdown, how long running attempts get to stop ffmpeg and hand their
# jobs back before they are cut off (ffmpeg's own SIGTERM→SIGKILL takes ~3 s).
STOP_ATTEMPTS_TIMEOUT_SECONDS = 15.0
LISTEN_RETRY_MIN_SECONDS = 0.2
# Failures of the database that are expected now and then (restart, network):
# logged as warnings and retried, never fatal to the runner.
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# Why an attempt was stopped before its operation finished.
CANCEL, SHUTDOWN, LOST, TIMEOUT, STALL = "cancel", "shutdown", "lost", "timeout", "stall"


def make_worker_id() -> str:
    """hostname-pid-random: readable in job history, unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def output_prefix(job: Job) -> str:
    if job.video_id is None:  # work without a source: scratch of its own
        return sourceless_job_prefix(job.user_id, job.id)
    return video_prefix(job.user_id, job.video_id) + f"jobs/{job.id}/"


def job_timeout(settings: Settings, video: Video | None) -> float:
    """Wall-clock limit of one attempt, scaled to the input's duration (the
    longest allowed for work without a source: a remote generation waits)."""
    if video is None:
        return settings.job_timeout_max_seconds
    duration = video.metadata.get("duration") if video.kind == "video" else None
    seconds = float(duration) if isinstance(duration, int | float) else 0.0
    scaled = settings.job_timeout_base_seconds + settings.job_timeout_per_media_second * seconds
    return min(scaled, settings.job_timeout_max_seconds)


def _trace_outcome(outcome: _Outcome) -> None:
    current = trace.get_current_span()
    current.set_attribute("frameflow.job.outcome", outcome.kind)
    if outcome.kind == "failed":
        mark_error(current, outcome.error or "failed")


async def _no_publish(_event: JobEventType, _job: Job) -> None:
    return None


class _Attempt:
    """One attempt of a job running in this process."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.progress = 0.0
        self.published_progress = 0.0
        self.last_activity = time.monotonic()
        self.progress_changed = asyncio.Event()
        self.stop_reason: str | None = None
        self.stop_requested = asyncio.Event()
        self.finished = False

    def report_progress(self, percent: float) -> None:
        if not math.isfinite(percent):
            return
        percent = min(max(percent, 0.0), 100.0)
        if percent <= self.progress:
            return  # monotonic: a late or repeated report changes nothing
        self.progress = percent
        self.last_activity = time.monotonic()
        self.progress_changed.set()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:  # the first reason wins
            self.stop_reason = reason
            self.stop_requested.set()


@dataclasses.dataclass(frozen=True)
class _Outcome:
    kind: str  # "succeeded", "failed", or a stop reason: cancel, shutdown, lost
    outputs: list[OutputFile] = dataclasses.field(default_factory=list)
    error: str | None = None


class JobRunner:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        storage: Storage,
        settings: Settings,
        ffmpeg: str,
        operations: Mapping[str, Operation],
        dsn: str | None = None,
        worker_id: str | None = None,
        publish: Publish | None = None,
        sandbox: Sandbox = NO_SANDBOX,
        metrics: Metrics | None = None,
    ) -> None:
        """`dsn` opens the dedicated LISTEN connection; without it one connection
        of `pool` is held for as long as the runner runs. `sandbox` confines
        each operation's ffmpeg (the app passes the one detected at start-up)."""
        self.pool = pool
        self.storage = storage
        self.settings = settings
        self.ffmpeg = ffmpeg
        self.sandbox = sandbox
        self.operations = operations
        self.worker_id = worker_id or make_worker_id()
        self.concurrency = settings.worker_concurrency or os.cpu_count() or 1
        self._dsn = dsn
        self._metrics = metrics
        self._publish = publish or _no_publish
        self._slots = asyncio.Semaphore(self.concurrency)
        self._wake = asyncio.Event()
        self._attempts: dict[uuid.UUID, _Attempt] = {}
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        self._claim_task: asyncio.Task[None] | None = None
        self._service_tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = False
        # Set while the LISTEN connection is up (tests wait for it).
        self.listening = asyncio.Event()

    # --- lifetime -------------------------------------------------------------

    async def start(self) -> None:
        """Start working, unless this instance is configured as API-only."""
        if self._started or not self.settings.workers_enabled:
            return
        self._started = True
        await asyncio.to_thread(self._remove_stale_workdirs)
        self._claim_task = asyncio.create_task(self._claim_loop(), name="jobs-claim")
        self._service_tasks = [
            asyncio.create_task(
                _repeat(self.reap_expired_leases, self.settings.job_poll_seconds),
                name="jobs-reaper",
            ),
            asyncio.create_task(
                _repeat(self.heartbeat, self.settings.job_heartbeat_seconds),
                name="jobs-heartbeat",
            ),
            asyncio.create_task(self._listen_loop(), name="jobs-listen"),
        ]
        log.info("job_runner_started", worker_id=self.worker_id, concurrency=self.concurrency)

    async def stop(self) -> None:
        """Graceful shutdown: claim nothing more, stop running attempts and hand their
        jobs back to the queue (not charged as an attempt), then end every task."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        reaper, heartbeat, listener = self._service_tasks
        # The heartbeat keeps renewing until every attempt has stopped, or a
        # lease could lapse mid-shutdown and the job be charged an attempt.
        await _cancel_and_wait(self._claim_task, reaper)
        for attempt in list(self._attempts.values()):
            attempt.stop(SHUTDOWN)
        if self._attempt_tasks:
            _done, pending = await asyncio.wait(
                set(self._attempt_tasks), timeout=STOP_ATTEMPTS_TIMEOUT_SECONDS
            )
            if pending:
                log.error("job_attempts_cut_off", count=len(pending))
                await _cancel_and_wait(*pending)
        await _cancel_and_wait(heartbeat, listener)
        with contextlib.suppress(*_DB_ERRORS):
            async with self.pool.acquire() as conn:
                await workers_db.forget(conn, self.worker_id)
        log.info("job_runner_stopped", worker_id=self.worker_id)

    def wake(self) -> None:
        """Look for work now (NOTIFY does this across instances)."""
        self._wake.set()

    async def publish(self, event: JobEventType, job: Job) -> None:
        """Tell subscribers; a failing subscriber never fails a job."""
        try:
            await self._publish(event, job)
        except Exception:
            log.exception("job_publish_failed", job_event=event, job_id=str(job.id))

    # --- claiming ---------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()  # claim only what can start at once
            self._wake.clear()  # a NOTIFY from here on wakes the wait below
            job = await self._claim_one()
            if job is None:
                self._slots.release()
                # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that
                # arrives with the wake-up it waits for (see server/drain.py).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.job_poll_seconds):
                        await self._wake.wait()
                continue
            self._start_attempt(job)

    async def _claim_one(self) -> Job | None:
        claim = asyncio.ensure_future(self._claim())
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # The claim may commit all the same; a job claimed now is started,
            # sees the shutdown and goes straight back to the queue.
            job = None
            with contextlib.suppress(Exception):
                job = await claim
            if job is not None:
                self._start_attempt(job)  # the attempt owns the slot now
            else:
                self._slots.release()
            raise

    async def _claim(self) -> Job | None:
        try:
            # Polling, most often for nothing: not a trace of its own every poll.
            with untraced():
                async with self.pool.acquire() as conn:
                    job = await state.claim(conn, self.worker_id, self.settings.job_lease_seconds)
        except _DB_ERRORS as exc:
            log.warning("job_claim_failed", error=str(exc))
            return None
        except Exception:
            log.exception("job_claim_error")
            return None
        if job is not None:
            log.info("job_claimed", job_id=str(job.id), attempt=job.attempts, op=job.operation)
        return job

    def _start_attempt(self, job: Job) -> None:
        previous = self._attempts.get(job.id)
        if previous is not None:  # our own older attempt lost its lease; it must stop
            previous.stop(LOST)
        attempt = _Attempt(job)
        self._attempts[job.id] = attempt
        task = asyncio.create_task(self._run_attempt(attempt), name=f"job-{job.id}")
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)

    # --- one attempt --------------------------------------------------------------

    async def _run_attempt(self, attempt: _Attempt) -> None:
        job = attempt.job
        # A child of the request that queued the job: one trace from upload to output.
        with TRACER.start_as_current_span(
            "job.attempt",
            context=context_from_traceparent(job.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "frameflow.job.id": str(job.id),
                "frameflow.job.operation": job.operation,
                "frameflow.job.attempt": job.attempts,
                "frameflow.worker.id": self.worker_id,
            },
        ):
            await self._run_attempt_traced(attempt)

    async def _run_attempt_traced(self, attempt: _Attempt) -> None:
        job = attempt.job
        pump = asyncio.create_task(self._pump_progress(attempt), name=f"job-{job.id}-progress")
        try:
            await self.publish("job.started", job)
            started = time.monotonic()
            try:
                outcome = await self._execute(attempt)
            except Exception:
                log.exception("job_attempt_error", job_id=str(job.id), attempt=job.attempts)
                outcome = _Outcome("failed", error="internal error")
            _trace_outcome(outcome)
            if self._metrics is not None:
                outcome_label = "canceled" if outcome.kind == CANCEL else outcome.kind
                self._metrics.job_duration.labels(job.operation, outcome_label).observe(
                    time.monotonic() - started
                )
            attempt.finished = True
            attempt.progress_changed.set()
            await asyncio.wait({pump})  # the last progress value goes out before the end
            await self._conclude(attempt, outcome)
        except Exception:
            # Typically the database was unreachable while finishing: the lease
            # then lapses and the reaper gives the job to another attempt.
            log.exception("job_attempt_error", job_id=str(job.id), attempt=job.attempts)
        finally:
            await _cancel_and_wait(pump)
            if self._attempts.get(job.id) is attempt:
                del self._attempts[job.id]
            self._slots.release()

    async def _execute(self, attempt: _Attempt) -> _Outcome:
        job = attempt.job
        if self._stopping:
            return _Outcome(SHUTDOWN)
        operation = self.operations.get(job.operation)
        if operation is None:
            return _Outcome("failed", error=f"unknown operation {job.operation!r}")
        video = None
        if job.video_id is not None:
            async with self.pool.acquire() as conn:
                video = await videos_db.get_video(conn, job.video_id, None)
            if video is None:
                return _Outcome("failed", error="the source video no longer exists")
        prefix = output_prefix(job)
        if job.attempts > 1:
            # Whatever an attempt that died left behind must not mix with ours.
            await self.storage.delete_prefix(prefix)
        workdir = data_dirs.attempt_dir(self.settings.data_dir, job.id, job.attempts)
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        ctx = JobContext(
            job=job,
            source=video,
            storage=self.storage,
            settings=self.settings,
            ffmpeg=self.ffmpeg,
            sandbox=self.sandbox,
            workdir=workdir,
            output_prefix=prefix,
            report_progress=attempt.report_progress,
            touch=attempt.touch,
        )
        try:
            return await self._supervise(attempt, operation, ctx, job_timeout(self.settings, video))
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    async def _supervise(
        self, attempt: _Attempt, operation: Operation, ctx: JobContext, time_limit: float
    ) -> _Outcome:
        """Run the operation until it ends or something stops it."""
        work = asyncio.create_task(operation.run(ctx), name=f"job-{attempt.job.id}-run")
        stop = asyncio.create_task(attempt.stop_requested.wait())
        deadline = time.monotonic() + time_limit
        stall = self.settings.job_stall_seconds
        try:
            while not work.done() and attempt.stop_reason is None:
                now = time.monotonic()
                if now >= deadline:
                    attempt.stop(TIMEOUT)
                elif now >= attempt.last_activity + stall:
                    attempt.stop(STALL)
                else:
                    wake_at = min(deadline, attempt.last_activity + stall)
                    await asyncio.wait(
                        {work, stop}, timeout=wake_at - now, return_when=asyncio.FIRST_COMPLETED
                    )
        finally:
            # A result that is in wins over a stop that came at the same moment.
            interrupted = not work.done()
            # run_ffmpeg kills its process group and reaps it before this returns.
            await _cancel_and_wait(work, stop)
        if interrupted:
            return self._stopped_outcome(attempt, time_limit)
        if work.exception() is None:
            return self._checked_outputs(attempt, list(work.result()))
        return _Outcome("failed", error=self._failure_message(attempt, work.exception()))

    def _checked_outputs(self, attempt: _Attempt, outputs: list[OutputFile]) -> _Outcome:
        """Outputs become rows as they are: an operation bug must fail its job, not
        make the final commit fail (and the job retry until its attempts run out)."""
        prefix = output_prefix(attempt.job)
        names = [o.name for o in outputs]
        if len(set(names)) == len(names) and all(
            o.storage_key.startswith(prefix) and o.size >= 0 for o in outputs
        ):
            return _Outcome("succeeded", outputs=outputs)
        log.error("job_outputs_invalid", job_id=str(attempt.job.id), names=names)
        return _Outcome("failed", error="internal error")

    def _stopped_outcome(self, attempt: _Attempt, time_limit: float) -> _Outcome:
        reason = attempt.stop_reason
        if reason == TIMEOUT:
            return _Outcome("failed", error=f"timed out after {time_limit:g} s")
        if reason == STALL:
            return _Outcome(
                "failed", error=f"no progress for {self.settings.job_stall_seconds:g} s"
            )
        assert reason in (CANCEL, SHUTDOWN, LOST), reason
        return _Outcome(reason)

    def _failure_message(self, attempt: _Attempt, exc: BaseException | None) -> str:
        if isinstance(exc, OperationFailed | FfmpegError):
            return str(exc) or "the operation failed"
        if isinstance(exc, HTTPError):  # params that were valid when queued, not any more
            return exc.message
        log.error(
            "job_operation_crashed",
            job_id=str(attempt.job.id),
            op=attempt.job.operation,
            exc_info=exc,
        )
        return "internal error"

    async def _conclude(self, attempt: _Attempt, outcome: _Outcome) -> None:
        """Write the attempt's end; partial outputs are gone before a failure is visible."""
        job = attempt.job
        if outcome.kind == LOST:
            # Someone else may own the job by now, and its output keys with it.
            await self._lost(job)
            return
        async with self.pool.acquire() as conn:
            if outcome.kind == "succeeded":
                done = await state.succeed(conn, job, self.worker_id, outcome.outputs)
            else:
                if not await jobs_db.is_owner(conn, job.id, self.worker_id, job.attempts):
                    log.warning("job_lost", job_id=str(job.id), attempt=job.attempts)
                    return
                await self._delete_outputs(job)
                if outcome.kind == "failed":
                    done = await state.fail(conn, job, self.worker_id, outcome.error or "failed")
                elif outcome.kind == CANCEL:
                    done = await state.cancel(conn, job, self.worker_id)
                else:
                    done = await state.requeue(
                        conn, job, self.worker_id, charge_attempt=False, reason="worker shut down"
                    )
        if done is None:
            await self._lost(job)
            return
        log.info("job_" + done.status, job_id=str(job.id), attempt=job.attempts, error=done.error)
        await self.publish(status_event(done.status), done)

    async def _lost(self, job: Job) -> None:
        """The attempt no longer owns its job. If the job is gone altogether (its
        video was deleted mid-run), nobody will ever own its output keys: remove
        what this attempt wrote so no bytes outlive the video."""
        async with self.pool.acquire() as conn:
            gone = await jobs_db.get_job(conn, job.id, None) is None
        if gone:
            await self._delete_outputs(job)
        log.warning("job_lost", job_id=str(job.id), attempt=job.attempts, deleted=gone)

    async def _delete_outputs(self, job: Job) -> None:
        try:
            await self.storage.delete_prefix(output_prefix(job))
        except Exception:
            # Left for the storage sweep; the job still ends (its rows list nothing).
            log.exception("job_outputs_delete_failed", job_id=str(job.id))

    # --- progress -------------------------------------------------------------------

    async def _pump_progress(self, attempt: _Attempt) -> None:
        """Persist and publish the latest progress, at most every PROGRESS_INTERVAL."""
        while True:
            await attempt.progress_changed.wait()
            attempt.progress_changed.clear()
            await self._flush_progress(attempt)
            if attempt.finished:
                return
            await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)

    async def _flush_progress(self, attempt: _Attempt) -> None:
        value = attempt.progress
        if value <= attempt.published_progress:
            return
        attempt.published_progress = value
        job = attempt.job
        try:
            async with self.pool.acquire() as conn:
                await jobs_db.update_progress(conn, job.id, self.worker_id, job.attempts, value)
        except _DB_ERRORS as exc:
            log.warning("job_progress_write_failed", job_id=str(job.id), error=str(exc))
        await self.publish("job.progress", dataclasses.replace(job, progress=value))

    # --- leases -----------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Say this runner is alive (one upsert: the admin summary counts workers seen
        in the last minute); renew its leases; stop attempts that were canceled or lost."""
        attempts = list(self._attempts.values())
        try:
            async with self.pool.acquire() as conn:
                await workers_db.beat(conn, self.worker_id, self.concurrency, len(attempts))
        except _DB_ERRORS as exc:
            log.warning("worker_heartbeat_failed", error=str(exc))
        if not attempts:
            return
        try:
            async with self.pool.acquire() as conn:
                renewal = await jobs_db.renew_leases(
                    conn,
                    self.worker_id,
                    [a.job.id for a in attempts],
                    self.settings.job_lease_seconds,
                )
        except _DB_ERRORS as exc:
            log.warning("job_heartbeat_failed", error=str(exc))
            return
        for attempt in attempts:
            if attempt.job.id in renewal.lost:
                attempt.stop(LOST)
            elif attempt.job.id in renewal.cancel_requested:
                attempt.stop(CANCEL)

    async def reap_expired_leases(self) -> list[Job]:
        """Jobs whose worker died go back to the queue (or end, attempts used up)."""
        try:
            async with self.pool.acquire() as conn:
                jobs = await state.requeue_expired_leases(conn)
        except _DB_ERRORS as exc:
            log.warning("job_reaper_failed", error=str(exc))
            return []
        for job in jobs:
            log.warning(
                "job_lease_expired", job_id=str(job.id), attempt=job.attempts, now=job.status
            )
            if job.status != QUEUED:
                await self._delete_outputs(job)  # no later attempt will overwrite them
            await self.publish(status_event(job.status), job)
        if any(j.status == QUEUED for j in jobs):
            self._wake.set()
        return jobs

    # --- LISTEN -------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        delay = LISTEN_RETRY_MIN_SECONDS
        while True:
            try:
                await self._listen()
            except _DB_ERRORS as exc:
                log.warning("job_listener_lost", error=str(exc) or type(exc).__name__)
            except Exception:
                log.exception("job_listener_error")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.job_poll_seconds)

    async def _listen(self) -> None:
        """Hold one LISTEN connection until it breaks (then the loop reconnects)."""
        conn: Any = await (asyncpg.connect(self._dsn) if self._dsn else self.pool.acquire())
        closed = asyncio.Event()

        def on_closed(_conn: object) -> None:
            closed.set()

        conn.add_termination_listener(on_closed)
        try:
            await conn.add_listener(jobs_db.NEW_JOB_CHANNEL, self._on_new_job)
            await conn.add_listener(jobs_db.CANCEL_CHANNEL, self._on_cancel)
            self.listening.set()
            self._wake.set()  # NOTIFYs sent while nobody listened are lost: look now
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.job_poll_seconds):
                        await closed.wait()
                if not closed.is_set():
                    # A silently dead socket only shows up when used.
                    await conn.fetchval("SELECT 1", timeout=self.settings.job_poll_seconds)
            raise ConnectionError("the LISTEN connection closed")
        finally:
            self.listening.clear()
            conn.remove_termination_listener(on_closed)
            await self._close_listener(conn)

    async def _close_listener(self, conn: Any) -> None:
        try:
            if self._dsn:
                await asyncio.wait_for(conn.close(), 2.0)
            else:
                await self.pool.release(conn, timeout=2.0)
        except Exception:
            conn.terminate()

    def _on_new_job(self, *_args: object) -> None:
        self._wake.set()

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        attempt = self._attempts.get(job_id)
        if attempt is not None:
            attempt.stop(CANCEL)

    # --- housekeeping -------------------------------------------------------------------

    def _remove_stale_workdirs(self) -> None:
        """Scratch dirs of attempts killed with their process; no attempt lives this long."""
        cutoff = time.time() - self.settings.job_timeout_max_seconds
        scratch.remove_stale([data_dirs.work_dir(self.settings.data_dir)], cutoff)


async def _cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel and await, to the end even if we are cancelled meanwhile: a task
    abandoned half-way is how stray ffmpeg processes and leaked tasks happen."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    if not pending:
        return
    interrupted = False
    while not all(t.done() for t in pending):
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


async def _repeat(action: Callable[[], Awaitable[object]], interval: float) -> None:
    """Run `action` every `interval` seconds until cancelled; one failure stops nothing."""
    while True:
        try:
            with untraced():  # heartbeats and the reaper: polling, not traces
                await action()
        except Exception:
            log.exception("job_background_error", action=getattr(action, "__name__", "?"))
        await asyncio.sleep(interval)
