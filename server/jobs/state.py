"""The one module that changes a job's status.

Allowed transitions are listed in `TRANSITIONS`; every change goes through
`_check`, and then through a guarded UPDATE in `server.db.jobs` that matches
only while the row is still in the state (and, for running jobs, the worker
and attempt) the caller believes. A stale caller gets None back and must not
act on the job any further.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from server.db import jobs as jobs_db
from server.errors import Conflict, NotFound
from server.generations.settlement import job_ended
from server.jobs.model import (
    CANCELED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    OutputFile,
)
from server.quota.ledger import QuotaLedger

TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (QUEUED, RUNNING),  # claimed by a worker
        (QUEUED, CANCELED),  # canceled before anyone ran it
        (RUNNING, SUCCEEDED),
        (RUNNING, FAILED),
        (RUNNING, CANCELED),
        (RUNNING, QUEUED),  # lease lost, graceful shutdown, or a crash with attempts left
    }
)


class IllegalTransition(RuntimeError):
    """A bug: code asked for a status change the state machine does not allow."""

    def __init__(self, job_id: uuid.UUID | None, source: str, target: str) -> None:
        super().__init__(f"job {job_id}: {source} → {target} is not an allowed transition")
        self.source = source
        self.target = target


def _check(job: Job | None, source: str, target: str) -> None:
    if (source, target) not in TRANSITIONS:
        raise IllegalTransition(job.id if job else None, source, target)


async def claim(conn: asyncpg.Connection, worker_id: str, lease_seconds: float) -> Job | None:
    """queued → running: the next job in queue order, or None when there is none."""
    _check(None, QUEUED, RUNNING)
    return await jobs_db.claim_next_job(conn, worker_id, lease_seconds)


async def succeed(
    conn: asyncpg.Connection, job: Job, worker_id: str, outputs: Sequence[OutputFile]
) -> Job | None:
    """running → succeeded with its outputs, all or nothing: output rows, the owner's
    usage, the status and the attempt's history row commit together."""
    _check(job, job.status, SUCCEEDED)
    async with conn.transaction():
        done = await jobs_db.finish_running_job(
            conn, job.id, worker_id=worker_id, attempt=job.attempts, status=SUCCEEDED, error=None
        )
        if done is None:
            return None
        delta = await jobs_db.replace_outputs(conn, job.id, outputs)
        await QuotaLedger.settle_job(conn, job.user_id, job.id, delta)
        await jobs_db.close_attempt(conn, job.id, job.attempts, SUCCEEDED, None)
        return done


async def fail(conn: asyncpg.Connection, job: Job, worker_id: str, error: str) -> Job | None:
    """running → failed (its partial outputs already deleted by the runner)."""
    return await _finish(conn, job, worker_id, FAILED, error)


async def cancel(conn: asyncpg.Connection, job: Job, worker_id: str) -> Job | None:
    """running → canceled by the worker that stopped it (partial outputs already deleted)."""
    return await _finish(conn, job, worker_id, CANCELED, None)


async def _finish(
    conn: asyncpg.Connection, job: Job, worker_id: str, target: str, error: str | None
) -> Job | None:
    _check(job, job.status, target)
    async with conn.transaction():
        done = await jobs_db.finish_running_job(
            conn, job.id, worker_id=worker_id, attempt=job.attempts, status=target, error=error
        )
        if done is not None:
            await jobs_db.close_attempt(conn, job.id, job.attempts, target, error)
            await QuotaLedger.settle_job(conn, job.user_id, job.id)
            await job_ended(conn, done)
        return done


async def requeue(
    conn: asyncpg.Connection, job: Job, worker_id: str, *, charge_attempt: bool, reason: str
) -> Job | None:
    """running → queued, and wake the workers. `charge_attempt=False` when the job was
    not at fault (this instance shutting down): it does not use up its attempts."""
    _check(job, job.status, QUEUED)
    async with conn.transaction():
        done = await jobs_db.requeue_running_job(
            conn, job.id, worker_id=worker_id, attempt=job.attempts, charge=charge_attempt
        )
        if done is not None:
            await jobs_db.close_attempt(conn, job.id, job.attempts, "retry", reason)
            await jobs_db.notify_new_job(conn)
        return done


async def requeue_expired_leases(conn: asyncpg.Connection) -> list[Job]:
    """Jobs of workers that died: running → queued while attempts remain, else failed
    (or canceled, when that was asked for). Returns them in their new state."""
    for target in (QUEUED, FAILED, CANCELED):
        _check(None, RUNNING, target)
    async with conn.transaction():
        jobs = await jobs_db.requeue_expired_leases(conn)
        for job in jobs:
            if job.status in FINISHED:
                await QuotaLedger.settle_job(conn, job.user_id, job.id)
                await job_ended(conn, job)
        if any(j.status == QUEUED for j in jobs):
            await jobs_db.notify_new_job(conn)
    return jobs


async def request_cancel(conn: asyncpg.Connection, job_id: uuid.UUID, user_id: uuid.UUID) -> Job:
    """A user's cancel: a queued job is canceled at once; a running one is flagged and
    its worker told (it moves it to canceled once ffmpeg is stopped); a finished one
    is a 409."""
    async with conn.transaction():
        # The row lock keeps a claim or a finish from slipping in between the
        # read and the update (claimers SKIP LOCKED rows, so none waits on us).
        job = await jobs_db.get_job(conn, job_id, user_id, lock=True)
        if job is None:
            raise NotFound("No such job", code="job_not_found")
        if job.status in FINISHED:
            raise Conflict(f"The job has already {job.status}", code="job_finished")
        if job.status == QUEUED:
            _check(job, QUEUED, CANCELED)
            canceled = await jobs_db.cancel_queued_job(conn, job.id)
            assert canceled is not None  # the row is locked and was queued
            await QuotaLedger.settle_job(conn, job.user_id, job.id)
            await job_ended(conn, canceled)
            return canceled
        flagged = await jobs_db.set_cancel_requested(conn, job.id)
        assert flagged is not None
        await jobs_db.notify_cancel(conn, job.id)
        return flagged
