"""SQL for `videos` and `pending_deletions` (the quota is server.db.quota's)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from server.object_keys import video_prefix
from server.videos.model import Video

_COLUMNS = (
    "id, user_id, filename, storage_key, size, sha256, content_type, kind, status, metadata,"
    " created_at, expires_at, title, description, tags"
)


# For other SQL modules that select whole videos (server.db.search).
VIDEO_COLUMNS = _COLUMNS


def _video(row: asyncpg.Record) -> Video:
    values = {name: row[name] for name in _NAMES}
    values["tags"] = tuple(values["tags"])
    return Video(**values)


video_from_row = _video
_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))


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


# The partial unique index of sql/020: one library image per user and content.
IMAGE_SHA256_INDEX = "videos_user_image_sha256_key"


async def find_image_by_sha256(
    conn: asyncpg.Connection, user_id: uuid.UUID, sha256: str
) -> Video | None:
    """The user's image of these bytes (the one the unique index holds), if any."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM videos
            WHERE user_id = $1 AND sha256 = $2 AND kind = 'image' AND sha256_unique""",  # noqa: S608
        user_id,
        sha256,
    )
    return _video(row) if row else None


async def renew_expiry(
    conn: asyncpg.Connection, video_id: uuid.UUID, ttl_seconds: int
) -> Video | None:
    """Keep the video at least `ttl_seconds` from now; None when it is gone (the
    sweep took it first: it re-checks the expiry under its row lock)."""
    row = await conn.fetchrow(
        f"""UPDATE videos
            SET expires_at = GREATEST(expires_at, now() + make_interval(secs => $2))
            WHERE id = $1 RETURNING {_COLUMNS}""",  # noqa: S608
        video_id,
        float(ttl_seconds),
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


async def update_metadata(
    conn: asyncpg.Connection,
    video_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    title: str | None,
    description: str,
    tags: tuple[str, ...],
) -> Video | None:
    """Replace the three editable fields; None when the user has no such video."""
    row = await conn.fetchrow(
        f"""UPDATE videos SET title = $3, description = $4, tags = $5
            WHERE id = $1 AND user_id = $2
            RETURNING {_COLUMNS}""",  # noqa: S608
        video_id,
        user_id,
        title,
        description,
        list(tags),
    )
    return _video(row) if row else None


async def delete_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, user_id: uuid.UUID | None
) -> Video | None:
    """Delete the row (its jobs and outputs cascade) and record its prefix in
    `pending_deletions`, in the caller's transaction; None when there was no such
    video (of that user, `user_id` given)."""
    row = await conn.fetchrow(
        f"""DELETE FROM videos WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
            RETURNING {_COLUMNS}""",  # noqa: S608
        video_id,
        user_id,
    )
    if row is None:
        return None
    video = _video(row)
    await add_pending_deletion(conn, video_prefix(video.user_id, video.id))
    return video


async def lock_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, user_id: uuid.UUID | None
) -> Video | None:
    """The row, locked until the caller's transaction ends (FOR UPDATE)."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM videos
            WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) FOR UPDATE""",  # noqa: S608
        video_id,
        user_id,
    )
    return _video(row) if row else None


# --- expiry -------------------------------------------------------------------------


# Jobs in these states still read the source (or will); their video is kept.
_ACTIVE_JOB = "j.video_id = v.id AND j.status IN ('queued', 'running')"


async def expired_videos(
    conn: asyncpg.Connection,
    now: datetime,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Video]:
    """Videos expired at `now` with no queued or running job, oldest expiry first.

    `after` is the (expires_at, id) of the previous batch's last row, so that a
    video skipped in this run (a job appeared meanwhile) is not seen again.
    """
    columns = ", ".join(f"v.{c.strip()}" for c in _COLUMNS.split(","))
    rows = await conn.fetch(
        f"""
        SELECT {columns} FROM videos v
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
    return [_video(r) for r in rows]


async def lock_expired_unused_video(
    conn: asyncpg.Connection, video_id: uuid.UUID, now: datetime
) -> Video | None:
    """The video, locked, if it is still expired and unused by any job; else None
    (gone already, TTL extended, or a job is queued/running).

    The row is locked first (FOR UPDATE): a job insert needs a key-share lock
    on its video (the foreign key), so no job can appear between the check
    and the caller's delete; jobs committed before we got the lock are visible
    to the check, which runs as a later statement.
    """
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
    return await get_video(conn, video_id, None)


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
