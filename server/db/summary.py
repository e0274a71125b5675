"""SQL for the admin summary: counts across users, videos, outputs, jobs and workers."""

from __future__ import annotations

import asyncpg

from server.admin.model import SystemSummary, WorkerSeen
from server.db.users import count_by_role

WORKER_SEEN_SECONDS = 60.0


async def system_summary(conn: asyncpg.Connection) -> SystemSummary:
    roles = await count_by_role(conn)
    videos = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(size), 0)::bigint AS bytes FROM videos"
    )
    outputs: int = await conn.fetchval("SELECT COALESCE(sum(size), 0)::bigint FROM job_outputs")
    jobs = await conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    workers = await conn.fetch(
        """
        SELECT worker_id, concurrency, running, started_at, seen_at FROM workers
        WHERE seen_at > now() - make_interval(secs => $1)
        ORDER BY worker_id
        """,
        WORKER_SEEN_SECONDS,
    )
    assert videos is not None
    return SystemSummary(
        users_by_role={role: c["total"] for role, c in roles.items()},
        users_disabled=sum(c["disabled"] for c in roles.values()),
        videos=videos["n"],
        video_bytes=videos["bytes"],
        output_bytes=outputs,
        jobs_by_status={r["status"]: r["n"] for r in jobs},
        workers=[WorkerSeen(**dict(r)) for r in workers],
    )
