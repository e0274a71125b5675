"""SQL for `batches` and the batch side of `jobs` (counts by status, the open jobs)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from server.batches.model import Batch
from server.db.videos import VIDEO_COLUMNS, video_from_row
from server.videos.model import Video


async def insert_batch(
    conn: asyncpg.Connection,
    *,
    batch_id: uuid.UUID,
    user_id: uuid.UUID,
    operations: list[dict[str, Any]],
    preset: str | None,
    job_count: int,
) -> None:
    await conn.execute(
        """INSERT INTO batches (id, user_id, operations, preset, job_count)
           VALUES ($1, $2, $3, $4, $5)""",
        batch_id,
        user_id,
        operations,
        preset,
        job_count,
    )


async def get_batch(
    conn: asyncpg.Connection, batch_id: uuid.UUID, user_id: uuid.UUID
) -> Batch | None:
    """The batch with its jobs counted by status, or None (also someone else's)."""
    row = await conn.fetchrow(
        """SELECT b.id, b.operations, b.preset, b.job_count, b.created_at,
                  COALESCE((SELECT jsonb_object_agg(status, n) FROM (
                      SELECT status, count(*) AS n FROM jobs WHERE batch_id = b.id
                      GROUP BY status) c), '{}'::jsonb) AS counts
           FROM batches b WHERE b.id = $1 AND b.user_id = $2""",
        batch_id,
        user_id,
    )
    if row is None:
        return None
    return Batch(
        id=row["id"],
        operations=row["operations"],
        preset=row["preset"],
        job_count=row["job_count"],
        created_at=row["created_at"],
        counts={str(k): int(v) for k, v in row["counts"].items()},
    )


async def open_job_ids(conn: asyncpg.Connection, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """The batch's queued and running jobs (what a cancel-all has to stop)."""
    rows = await conn.fetch(
        """SELECT id FROM jobs WHERE batch_id = $1 AND status IN ('queued', 'running')
           ORDER BY created_at, id""",
        batch_id,
    )
    return [r["id"] for r in rows]


async def lock_owned_videos(
    conn: asyncpg.Connection, user_id: uuid.UUID, video_ids: list[uuid.UUID]
) -> list[Video]:
    """The user's videos among `video_ids`, share-locked until the transaction ends (a
    delete cannot slip in between the check and the jobs' inserts)."""
    rows = await conn.fetch(
        f"""SELECT {VIDEO_COLUMNS} FROM videos WHERE id = ANY($1::uuid[]) AND user_id = $2
            ORDER BY id FOR SHARE""",  # noqa: S608 - column list is a constant
        video_ids,
        user_id,
    )
    return [video_from_row(r) for r in rows]
