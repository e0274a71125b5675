"""SQL for `jobs`, `job_outputs` and `job_events`: the durable job queue.

Every statement that changes a job's `status` is called from
`server.jobs.state` only, which checks it against the allowed transitions.
Each of them is guarded (`WHERE status = ... AND worker_id = ... AND
attempts = ...`), so a worker that lost its job cannot overwrite what a newer
owner wrote; they return None when the guard did not match.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.jobs.model import Job, JobEvent, OutputFile

# LISTEN/NOTIFY channels. New work carries no payload (any worker may take
# it); a cancel carries the job id, for whichever worker is running it.
NEW_JOB_CHANNEL = "frameflow_jobs"
CANCEL_CHANNEL = "frameflow_job_cancel"

_COLUMNS = (
    "id, user_id, video_id, operation, params, status, priority, progress, attempts,"
    " max_attempts, error, worker_id, lease_expires_at, cancel_requested, created_at,"
    " started_at, finished_at, traceparent"
)
# The same columns qualified, for statements that join (UPDATE ... FROM).
_JOB_COLUMNS = ", ".join("jobs." + c.strip() for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class LeaseRenewal:
    """What a heartbeat learned about the jobs it renewed."""

    cancel_requested: frozenset[uuid.UUID]
    lost: frozenset[uuid.UUID]  # no longer running under this worker: stop, write nothing


def _job(row: asyncpg.Record) -> Job:
    return Job(**dict(row))


def _job_or_none(row: asyncpg.Record | None) -> Job | None:
    return None if row is None else _job(row)


_TIMESTAMPS = ("lease_expires_at", "created_at", "started_at", "finished_at")


def job_from_snapshot(row: Mapping[str, Any]) -> Job:
    """A job from `to_jsonb(jobs_row)`, as the email and webhook triggers record it."""
    values: dict[str, Any] = {name: row.get(name) for name in Job.__dataclass_fields__}
    for name in ("id", "user_id", "video_id"):
        if values[name] is not None:
            values[name] = uuid.UUID(str(values[name]))
    for name in _TIMESTAMPS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(str(values[name]))
    values["progress"] = float(values["progress"] or 0)
    values["params"] = values["params"] or {}
    return Job(**values)


async def insert_job(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    video_id: uuid.UUID | None,
    operation: str,
    params: dict[str, Any],
    priority: int,
    max_attempts: int,
    job_id: uuid.UUID | None = None,
    traceparent: str | None = None,
    batch_id: uuid.UUID | None = None,
) -> Job:
    row = await conn.fetchrow(
        f"""
        INSERT INTO jobs (id, user_id, video_id, operation, params, priority, max_attempts,
                          traceparent, batch_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        job_id or uuid.uuid4(),
        user_id,
        video_id,
        operation,
        params,
        priority,
        max_attempts,
        traceparent,
        batch_id,
    )
    assert row is not None
    return _job(row)


async def get_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, user_id: uuid.UUID | None, *, lock: bool = False
) -> Job | None:
    """The job, or None — also when it is someone else's (`user_id` given).

    `lock` takes the row lock until the transaction ends (callers deciding a
    transition from what they read)."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
            {"FOR UPDATE" if lock else ""}""",  # noqa: S608
        job_id,
        user_id,
    )
    return _job_or_none(row)


async def list_jobs(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    status: str | None = None,
    video_id: uuid.UUID | None = None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Job]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM jobs
        WHERE user_id = $1
          AND ($2::text IS NULL OR status = $2)
          AND ($3::uuid IS NULL OR video_id = $3)
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $6
        """,  # noqa: S608
        user_id,
        status,
        video_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_job(r) for r in rows]


async def latest_thumbnail_jobs(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    video_ids: Sequence[uuid.UUID],
    output_name: str,
) -> dict[uuid.UUID, uuid.UUID]:
    """video id -> its newest succeeded `thumbnail` job that stored `output_name`, for a page
    of videos (one query for the whole page; jobs_video_idx finds each video's jobs)."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (jobs.video_id) jobs.video_id, jobs.id
        FROM jobs
        JOIN job_outputs ON job_outputs.job_id = jobs.id AND job_outputs.name = $3
        WHERE jobs.video_id = ANY($2::uuid[]) AND jobs.user_id = $1
          AND jobs.operation = 'thumbnail' AND jobs.status = 'succeeded'
        ORDER BY jobs.video_id, jobs.finished_at DESC NULLS LAST, jobs.id DESC
        """,
        user_id,
        list(video_ids),
        output_name,
    )
    return {r["video_id"]: r["id"] for r in rows}


async def claim_next_job(
    conn: asyncpg.Connection, worker_id: str, lease_seconds: float
) -> Job | None:
    """queued → running for the first job in queue order, with a lease and a new attempt row.

    SKIP LOCKED: concurrent claimers each take a different row instead of
    queueing behind one another's lock."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""
            WITH next AS (
                SELECT id FROM jobs WHERE status = 'queued'
                ORDER BY priority DESC, created_at, id
                LIMIT 1 FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = $1,
                            lease_expires_at = now() + make_interval(secs => $2),
                            started_at = now(), progress = 0, error = NULL
            FROM next WHERE jobs.id = next.id
            RETURNING {_JOB_COLUMNS}
            """,  # noqa: S608
            worker_id,
            lease_seconds,
        )
        if row is None:
            return None
        job = _job(row)
        await conn.execute(
            "INSERT INTO job_events (job_id, attempt, worker_id) VALUES ($1, $2, $3)",
            job.id,
            job.attempts,
            worker_id,
        )
        return job


async def renew_leases(
    conn: asyncpg.Connection, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
) -> LeaseRenewal:
    if not job_ids:
        return LeaseRenewal(frozenset(), frozenset())
    rows = await conn.fetch(
        """
        UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
        WHERE id = ANY($1::uuid[]) AND status = 'running' AND worker_id = $2
        RETURNING id, cancel_requested
        """,
        list(job_ids),
        worker_id,
        lease_seconds,
    )
    renewed = {r["id"] for r in rows}
    return LeaseRenewal(
        cancel_requested=frozenset(r["id"] for r in rows if r["cancel_requested"]),
        lost=frozenset(set(job_ids) - renewed),
    )


async def is_owner(
    conn: asyncpg.Connection, job_id: uuid.UUID, worker_id: str, attempt: int
) -> bool:
    """Whether this attempt still holds the job (before deleting its partial outputs)."""
    value = await conn.fetchval(
        """SELECT 1 FROM jobs
           WHERE id = $1 AND status = 'running' AND worker_id = $2 AND attempts = $3""",
        job_id,
        worker_id,
        attempt,
    )
    return value is not None


async def update_progress(
    conn: asyncpg.Connection, job_id: uuid.UUID, worker_id: str, attempt: int, progress: float
) -> None:
    # GREATEST: progress stored never goes backwards within an attempt.
    await conn.execute(
        """
        UPDATE jobs SET progress = GREATEST(progress, $4)
        WHERE id = $1 AND status = 'running' AND worker_id = $2 AND attempts = $3
        """,
        job_id,
        worker_id,
        attempt,
        min(max(progress, 0.0), 100.0),
    )


# --- status changes: called by server.jobs.state only -------------------------


async def finish_running_job(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    *,
    worker_id: str,
    attempt: int,
    status: str,
    error: str | None,
) -> Job | None:
    """running → succeeded | failed | canceled, by the attempt that holds it."""
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET status = $4, error = $5, finished_at = now(), lease_expires_at = NULL,
                        progress = CASE WHEN $4 = 'succeeded' THEN 100 ELSE progress END
        WHERE id = $1 AND status = 'running' AND worker_id = $2 AND attempts = $3
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
        worker_id,
        attempt,
        status,
        error,
    )
    return _job_or_none(row)


async def cancel_queued_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> Job | None:
    """queued → canceled (nobody runs it, so nothing else to stop)."""
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET status = 'canceled', cancel_requested = true, finished_at = now()
        WHERE id = $1 AND status = 'queued'
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
    )
    return _job_or_none(row)


async def set_cancel_requested(conn: asyncpg.Connection, job_id: uuid.UUID) -> Job | None:
    """Flag a running job; its worker stops it and moves it to canceled."""
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET cancel_requested = true WHERE id = $1 AND status = 'running'
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
    )
    return _job_or_none(row)


async def requeue_running_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, *, worker_id: str, attempt: int, charge: bool
) -> Job | None:
    """running → queued. Uncharged (our own shutdown cut it short), the job gets one
    more attempt instead of a lower count, so attempt numbers stay unique in job_events."""
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL,
                        progress = 0,
                        max_attempts = max_attempts + CASE WHEN $4 THEN 0 ELSE 1 END
        WHERE id = $1 AND status = 'running' AND worker_id = $2 AND attempts = $3
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
        worker_id,
        attempt,
        charge,
    )
    return _job_or_none(row)


async def requeue_expired_leases(conn: asyncpg.Connection) -> list[Job]:
    """Running jobs whose worker stopped renewing: queued again while attempts remain,
    else failed; canceled if a cancel was asked for. Their attempt rows are closed."""
    rows = await conn.fetch(
        f"""
        WITH expired AS (
            UPDATE jobs SET
                status = CASE WHEN cancel_requested THEN 'canceled'
                              WHEN attempts < max_attempts THEN 'queued'
                              ELSE 'failed' END,
                error = CASE WHEN cancel_requested OR attempts < max_attempts THEN NULL
                             ELSE 'lease expired after ' || attempts || ' attempts' END,
                finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts
                                   THEN now() END,
                worker_id = CASE WHEN cancel_requested OR attempts >= max_attempts
                                 THEN worker_id END,
                progress = CASE WHEN cancel_requested OR attempts >= max_attempts
                                THEN progress ELSE 0 END,
                lease_expires_at = NULL
            WHERE status = 'running' AND lease_expires_at < now()
            RETURNING {_JOB_COLUMNS}
        ), closed AS (
            UPDATE job_events e SET ended_at = now(), outcome = 'lease_expired',
                                    error = 'lease expired'
            FROM expired
            WHERE e.job_id = expired.id AND e.attempt = expired.attempts AND e.ended_at IS NULL
        )
        SELECT * FROM expired
        """,  # noqa: S608
    )
    return [_job(r) for r in rows]


async def close_attempt(
    conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, outcome: str, error: str | None
) -> None:
    await conn.execute(
        """
        UPDATE job_events SET ended_at = now(), outcome = $3, error = $4
        WHERE job_id = $1 AND attempt = $2 AND ended_at IS NULL
        """,
        job_id,
        attempt,
        outcome,
        error,
    )


# --- outputs and history ------------------------------------------------------


async def replace_outputs(
    conn: asyncpg.Connection, job_id: uuid.UUID, outputs: Sequence[OutputFile]
) -> int:
    """Store the output rows of a job, dropping any earlier ones; returns the change
    in bytes stored (for the owner's quota counter)."""
    old = await conn.fetchval(
        "WITH gone AS (DELETE FROM job_outputs WHERE job_id = $1 RETURNING size)"
        " SELECT COALESCE(sum(size), 0) FROM gone",
        job_id,
    )
    await conn.executemany(
        """INSERT INTO job_outputs (job_id, name, storage_key, size, content_type)
           VALUES ($1, $2, $3, $4, $5)""",
        [(job_id, o.name, o.storage_key, o.size, o.content_type) for o in outputs],
    )
    return sum(o.size for o in outputs) - int(old)


async def list_outputs(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[OutputFile]:
    rows = await conn.fetch(
        """SELECT name, storage_key, size, content_type FROM job_outputs
           WHERE job_id = $1 ORDER BY name""",
        job_id,
    )
    return [OutputFile(**dict(r)) for r in rows]


async def get_output(conn: asyncpg.Connection, job_id: uuid.UUID, name: str) -> OutputFile | None:
    row = await conn.fetchrow(
        """SELECT name, storage_key, size, content_type FROM job_outputs
           WHERE job_id = $1 AND name = $2""",
        job_id,
        name,
    )
    return None if row is None else OutputFile(**dict(row))


async def list_events(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[JobEvent]:
    rows = await conn.fetch(
        """SELECT attempt, worker_id, started_at, ended_at, outcome, error FROM job_events
           WHERE job_id = $1 ORDER BY attempt""",
        job_id,
    )
    return [JobEvent(**dict(r)) for r in rows]


# --- notifications --------------------------------------------------------------


async def notify_new_job(conn: asyncpg.Connection) -> None:
    """Wake idle workers (sent at commit when called inside a transaction)."""
    await conn.execute("SELECT pg_notify($1, '')", NEW_JOB_CHANNEL)


async def notify_cancel(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(job_id))


@dataclass(frozen=True)
class OpenJobCount:
    status: str
    operation: str
    count: int


async def count_open_jobs(conn: asyncpg.Connection) -> list[OpenJobCount]:
    """Queued and running jobs by status and operation (what /metrics and KEDA watch)."""
    rows = await conn.fetch(
        """
        SELECT status, operation, count(*) AS n FROM jobs
        WHERE status IN ('queued', 'running')
        GROUP BY status, operation
        """
    )
    return [OpenJobCount(r["status"], r["operation"], r["n"]) for r in rows]


async def list_all_jobs(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    operation: str | None,
    user_id: uuid.UUID | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[Job]:
    """Every user's jobs, newest first (the admin console); filters are optional."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM jobs
        WHERE ($1::text IS NULL OR status = $1)
          AND ($2::text IS NULL OR operation = $2)
          AND ($3::uuid IS NULL OR user_id = $3)
          AND ($4::timestamptz IS NULL OR created_at >= $4)
          AND ($5::timestamptz IS NULL OR created_at < $5)
          AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $8
        """,  # noqa: S608
        status,
        operation,
        user_id,
        created_after,
        created_before,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_job(r) for r in rows]
