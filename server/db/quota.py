"""SQL for the storage quota: `users.used_bytes`, `jobs.reserved_bytes` and
`tus_uploads.reserved_bytes`.

Called by server.quota.ledger only: it is the one writer of both columns.
"""

from __future__ import annotations

import uuid

import asyncpg


async def try_add(conn: asyncpg.Connection, user_id: uuid.UUID, nbytes: int) -> bool:
    """Add `nbytes` to the user's usage if it still fits; atomic against concurrent requests."""
    row = await conn.fetchrow(
        """
        UPDATE users SET used_bytes = used_bytes + $2
        WHERE id = $1 AND used_bytes + $2 <= quota_bytes
        RETURNING id
        """,
        user_id,
        nbytes,
    )
    return row is not None


async def add(conn: asyncpg.Connection, user_id: uuid.UUID, delta: int) -> None:
    """Change the usage by `delta` whatever the quota (bytes already stored, or freed)."""
    await conn.execute(
        "UPDATE users SET used_bytes = GREATEST(used_bytes + $2, 0) WHERE id = $1",
        user_id,
        delta,
    )


async def headroom(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Bytes the user may still store (never negative)."""
    value = await conn.fetchval(
        "SELECT GREATEST(quota_bytes - used_bytes, 0) FROM users WHERE id = $1", user_id
    )
    return int(value or 0)


async def set_job_reservation(conn: asyncpg.Connection, job_id: uuid.UUID, nbytes: int) -> None:
    await conn.execute("UPDATE jobs SET reserved_bytes = $2 WHERE id = $1", job_id, nbytes)


async def take_job_reservation(conn: asyncpg.Connection, job_id: uuid.UUID) -> int:
    """Zero the job's reservation and return what it was (0 if the job is gone)."""
    value = await conn.fetchval(
        """
        WITH old AS (SELECT id, reserved_bytes FROM jobs WHERE id = $1 FOR UPDATE)
        UPDATE jobs j SET reserved_bytes = 0 FROM old WHERE j.id = old.id
        RETURNING old.reserved_bytes
        """,
        job_id,
    )
    return int(value or 0)


async def bytes_held_by_video(conn: asyncpg.Connection, video_id: uuid.UUID) -> int:
    """What a video counts for: its jobs' stored outputs and their open reservations
    (the source's own size is on its row)."""
    value = await conn.fetchval(
        """
        SELECT COALESCE((SELECT SUM(o.size) FROM job_outputs o
                         JOIN jobs j ON j.id = o.job_id WHERE j.video_id = $1), 0)
             + COALESCE((SELECT SUM(reserved_bytes) FROM jobs WHERE video_id = $1), 0)
        """,
        video_id,
    )
    return int(value or 0)


async def tus_reservation(conn: asyncpg.Connection, upload_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT reserved_bytes FROM tus_uploads WHERE id = $1 FOR UPDATE", upload_id
    )
    return int(value or 0)


async def add_tus_reservation(conn: asyncpg.Connection, upload_id: uuid.UUID, delta: int) -> None:
    await conn.execute(
        "UPDATE tus_uploads SET reserved_bytes = reserved_bytes + $2 WHERE id = $1",
        upload_id,
        delta,
    )


async def take_tus_reservation(conn: asyncpg.Connection, upload_id: uuid.UUID) -> int:
    """Zero the upload's reservation and return what it was (0 if the row is gone)."""
    value = await conn.fetchval(
        """
        WITH old AS (SELECT id, reserved_bytes FROM tus_uploads WHERE id = $1 FOR UPDATE)
        UPDATE tus_uploads t SET reserved_bytes = 0 FROM old WHERE t.id = old.id
        RETURNING old.reserved_bytes
        """,
        upload_id,
    )
    return int(value or 0)
