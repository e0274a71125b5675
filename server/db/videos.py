"""SQL for `videos` (and the quota counter on `users` that moves with them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


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


_COLUMNS = (
    "id, user_id, filename, storage_key, size, sha256, content_type, kind, status, metadata,"
    " created_at"
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
) -> Video:
    row = await conn.fetchrow(
        f"""
        INSERT INTO videos (id, user_id, filename, storage_key, size, sha256, content_type,
                            kind, status, metadata)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', $9)
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
        return video
