"""SQL for `videos` (and the quota counter on `users` that moves with them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.object_keys import video_prefix


@dataclass(frozen=True)
class Video:
    id: uuid.UUID
    user_id: uuid.UUID
    filename: str
    storage_key: str
    size: int
    sha256: str
    content_type: str
    kind: str
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    # Always set on rows; None only on a Video built in memory before it is stored.
    expires_at: datetime | None = None


_COLUMNS = (
    "id, user_id, filename, storage_key, size, sha256, content_type, kind, status, metadata,"
    " created_at, expires_at"
)


def _video(row: asyncpg.Record) -> Video:
    return Video(**dict(row))


async def reserve_quota(conn: asyncpg.Connection, user_id: uuid.UUID, size: int) -> bool:
    """Add `size` to the user's usage if it still fits; atomic against concurrent uploads."""
    row = await conn.fetchrow(
        """
        UPDATE users SET used_bytes = used_bytes + $2
        WHERE id = $1 AND used_bytes + $2 <= quota_bytes
        RETURNING id
        """,
        user_id,
        size,
    )
    return row is not None


async def release_quota(conn: asyncpg.Connection, user_id: uuid.UUID, size: int) -> None:
    await conn.execute(
        "UPDATE users SET used_bytes = GREATEST(used_bytes - $2, 0) WHERE id = $1",
        user_id,
        size,
    )


async def quota_headroom(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Bytes the user may still store (never negative)."""
    value = await conn.fetchval(
        "SELECT GREATEST(quota_bytes - used_bytes, 0) FROM users WHERE id = $1", user_id
    )
    return int(value or 0)


async def insert_video(
    conn: asyncpg.Connection,
    *,
    id: uuid.UUID,
    user_id: uuid.UUID,
    filename: str,
    storage_key: str,
    size: int,
    sha256: str,
    content_type: str,
    kind: str,
    metadata: dict[str, Any],
    ttl_seconds: int = 7 * 24 * 3600,  # callers pass settings.video_ttl_seconds
) -> Video:
    # expires_at from the database clock, like created_at: instances whose
    # clocks drift apart still agree on what has expired.
    row = await conn.fetchrow(
        f"""
        INSERT INTO videos (id, user_id, filename, storage_key, size, sha256, content_type,
                            kind, status, metadata, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', $9,
                now() + make_interval(secs => $10))
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        id,
        user_id,
        filename,
        storage_key,
        size,
        sha256,
        content_type,
        kind,
        metadata,
        float(ttl_seconds),
    )
    assert row is not None
    return _video(row)


async def get_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, user_id: uuid.UUID | None
) -> Video | None:
    """The video, or None — also when it belongs to someone else (`user_id` given)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM videos WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)",  # noqa: S608
        video_id,
        user_id,
    )
    return _video(row) if row else None


async def list_videos(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Video]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    if before is None:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM videos WHERE user_id = $1
                ORDER BY created_at DESC, id DESC LIMIT $2""",  # noqa: S608
            user_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM videos
                WHERE user_id = $1 AND (created_at, id) < ($2, $3)
                ORDER BY created_at DESC, id DESC LIMIT $4""",  # noqa: S608
            user_id,
            before[0],
            before[1],
            limit,
        )
    return [_video(r) for r in rows]


async def delete_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, user_id: uuid.UUID
) -> Video | None:
    """Delete the row (its jobs and outputs cascade) and give the owner back the
    bytes of the source and of every output, atomically."""
    async with conn.transaction():
        outputs_size = await conn.fetchval(
            """
            SELECT COALESCE(SUM(o.size), 0) FROM job_outputs o
            JOIN jobs j ON j.id = o.job_id
            WHERE j.video_id = $1 AND j.user_id = $2
            """,
            video_id,
            user_id,
        )
        row = await conn.fetchrow(
            f"DELETE FROM videos WHERE id = $1 AND user_id = $2 RETURNING {_COLUMNS}",  # noqa: S608
            video_id,
            user_id,
        )
        if row is None:
            return None
        video = _video(row)
        await release_quota(conn, user_id, video.size + int(outputs_size))
        await add_pending_deletion(conn, video_prefix(video.user_id, video.id))
        return video


# --- expiry -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpiredVideo:
    video: Video
    outputs_size: int  # bytes of its jobs' outputs, freed with it

    @property
    def total_size(self) -> int:
        return self.video.size + self.outputs_size


# Jobs in these states still read the source (or will); their video is kept.
_ACTIVE_JOB = "j.video_id = v.id AND j.status IN ('queued', 'running')"


async def expired_videos(
    conn: asyncpg.Connection,
    now: datetime,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[ExpiredVideo]:
    """Videos expired at `now` with no queued or running job, oldest expiry first.

    `after` is the (expires_at, id) of the previous batch's last row, so that a
    video skipped in this run (a job appeared meanwhile) is not seen again.
    """
    columns = ", ".join(f"v.{c.strip()}" for c in _COLUMNS.split(","))
    rows = await conn.fetch(
        f"""
        SELECT {columns},
               (SELECT COALESCE(SUM(o.size), 0) FROM job_outputs o
                JOIN jobs j ON j.id = o.job_id WHERE j.video_id = v.id) AS outputs_size
        FROM videos v
        WHERE v.expires_at <= $1
          AND ($2::timestamptz IS NULL OR (v.expires_at, v.id) > ($2, $3))
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE {_ACTIVE_JOB})
        ORDER BY v.expires_at, v.id
        LIMIT $4
        """,  # noqa: S608 - constants only
        now,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    out = []
    for row in rows:
        values = dict(row)
        outputs_size = int(values.pop("outputs_size"))
        out.append(ExpiredVideo(Video(**values), outputs_size))
    return out


async def delete_expired_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, now: datetime
) -> ExpiredVideo | None:
    """Delete the video if it is still expired and unused by any job, freeing its quota.

    The row is locked first (FOR UPDATE): a job insert needs a key-share lock
    on its video (the foreign key), so no job can appear between the check
    and the delete; jobs committed before we got the lock are visible to the
    check, which runs as a later statement. Returns None when the video was
    kept (gone already, TTL extended, or a job is queued/running).
    """
    async with conn.transaction():
        locked = await conn.fetchval(
            "SELECT id FROM videos WHERE id = $1 AND expires_at <= $2 FOR UPDATE",
            video_id,
            now,
        )
        if locked is None:
            return None
        busy = await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM jobs j, videos v WHERE v.id = $1 AND {_ACTIVE_JOB})",  # noqa: S608
            video_id,
        )
        if busy:
            return None
        video = await get_video(conn, video_id, None)
        if video is None:
            return None
        outputs_size = await conn.fetchval(
            """SELECT COALESCE(SUM(o.size), 0) FROM job_outputs o
               JOIN jobs j ON j.id = o.job_id WHERE j.video_id = $1""",
            video_id,
        )
        deleted = await delete_video(conn, video_id, video.user_id)
        if deleted is None:
            return None
        return ExpiredVideo(deleted, int(outputs_size))


async def add_pending_deletion(conn: asyncpg.Connection, prefix: str) -> None:
    await conn.execute(
        "INSERT INTO pending_deletions (prefix) VALUES ($1) ON CONFLICT (prefix) DO NOTHING",
        prefix,
    )


async def pending_deletions(
    conn: asyncpg.Connection, older_than: datetime, limit: int
) -> list[str]:
    rows = await conn.fetch(
        """SELECT prefix FROM pending_deletions WHERE created_at <= $1
           ORDER BY created_at LIMIT $2""",
        older_than,
        limit,
    )
    return [r["prefix"] for r in rows]


async def clear_pending_deletion(conn: asyncpg.Connection, prefix: str) -> None:
    await conn.execute("DELETE FROM pending_deletions WHERE prefix = $1", prefix)
