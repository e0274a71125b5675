"""SQL for `tus_uploads` (the quota hold is server.db.quota's).

Statements that change `status` are called from `server.tus.state` only,
which checks them against the allowed transitions; each is guarded by the
status the caller believes the row is in and returns None when it is not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from server.storage.base import AppendState
from server.tus.model import UNFINISHED, TusStatus, TusUpload

_COLUMNS = (
    "id, user_id, video_id, status, upload_length, upload_offset, reserved_bytes, filename,"
    " metadata, process, ttl_seconds, storage, error, created_at, updated_at, expires_at,"
    " cleaned_at, expires_at <= now() AS past_expiry"
)
_UNFINISHED = sorted(UNFINISHED)


def _upload(row: asyncpg.Record) -> TusUpload:
    data = dict(row)
    data["storage"] = AppendState.from_json(data["storage"])
    data["process"] = list(data["process"])
    return TusUpload(**data)


async def count_unfinished_locked(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """The user's unfinished uploads, counted under a lock on the user's row so that two
    creations at once cannot both slip under the cap (call inside a transaction)."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    value = await conn.fetchval(
        """SELECT count(*) FROM tus_uploads
           WHERE user_id = $1 AND status = ANY($2::text[]) AND expires_at > now()""",
        user_id,
        _UNFINISHED,
    )
    return int(value or 0)


async def insert_upload(
    conn: asyncpg.Connection,
    *,
    id: uuid.UUID,
    user_id: uuid.UUID,
    video_id: uuid.UUID,
    upload_length: int | None,
    filename: str,
    metadata: dict[str, str],
    process: Sequence[str],
    ttl_seconds: int | None,
    storage: AppendState,
    expires_in_seconds: int,
) -> TusUpload:
    row = await conn.fetchrow(
        f"""
        INSERT INTO tus_uploads (id, user_id, video_id, upload_length, filename, metadata,
                                 process, ttl_seconds, storage, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10))
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        id,
        user_id,
        video_id,
        upload_length,
        filename,
        metadata,
        list(process),
        ttl_seconds,
        storage.to_json(),
        float(expires_in_seconds),
    )
    assert row is not None
    return _upload(row)


async def get_upload(
    conn: asyncpg.Connection, upload_id: uuid.UUID, user_id: uuid.UUID | None
) -> TusUpload | None:
    """The upload, or None — also when it belongs to someone else (`user_id` given)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM tus_uploads WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)",  # noqa: S608
        upload_id,
        user_id,
    )
    return _upload(row) if row else None


async def record_progress(
    conn: asyncpg.Connection, upload_id: uuid.UUID, expected_offset: int, storage: AppendState
) -> TusUpload | None:
    """Newly stored bytes of an uploading upload; None unless it is still uploading at
    `expected_offset`."""
    row = await conn.fetchrow(
        f"""
        UPDATE tus_uploads SET upload_offset = $3, storage = $4, updated_at = now()
        WHERE id = $1 AND status = 'uploading' AND upload_offset = $2
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        upload_id,
        expected_offset,
        storage.size,
        storage.to_json(),
    )
    return _upload(row) if row else None


async def set_length(conn: asyncpg.Connection, upload_id: uuid.UUID, length: int) -> TusUpload:
    """A deferred length, declared (the caller checked it is still deferred)."""
    row = await conn.fetchrow(
        f"""
        UPDATE tus_uploads SET upload_length = $2, updated_at = now()
        WHERE id = $1 AND upload_length IS NULL RETURNING {_COLUMNS}
        """,  # noqa: S608
        upload_id,
        length,
    )
    assert row is not None
    return _upload(row)


async def set_video_id(conn: asyncpg.Connection, upload_id: uuid.UUID, video_id: uuid.UUID) -> None:
    """Called by server.tus.state only: a completed upload that became an image
    already in the library names that image."""
    await conn.execute("UPDATE tus_uploads SET video_id = $2 WHERE id = $1", upload_id, video_id)


async def change_status(
    conn: asyncpg.Connection,
    upload_id: uuid.UUID,
    source: TusStatus,
    target: TusStatus,
    *,
    storage: AppendState | None = None,
    error: dict[str, Any] | None = None,
    only_if_expired: bool = False,
) -> TusUpload | None:
    """Called by server.tus.state only. With `storage`, its size becomes the offset."""
    row = await conn.fetchrow(
        f"""
        UPDATE tus_uploads
        SET status = $3,
            storage = COALESCE($4, storage),
            upload_offset = COALESCE(($4 ->> 'size')::bigint, upload_offset),
            error = COALESCE($5, error),
            updated_at = now()
        WHERE id = $1 AND status = $2 AND (NOT $6 OR expires_at <= now())
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        upload_id,
        source,
        target,
        storage.to_json() if storage is not None else None,
        error,
        only_if_expired,
    )
    return _upload(row) if row else None


async def mark_cleaned(conn: asyncpg.Connection, upload_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE tus_uploads SET cleaned_at = now() WHERE id = $1 AND cleaned_at IS NULL",
        upload_id,
    )


async def expired_unfinished(conn: asyncpg.Connection, limit: int) -> list[TusUpload]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM tus_uploads
            WHERE status = ANY($1::text[]) AND expires_at <= now()
            ORDER BY expires_at LIMIT $2""",  # noqa: S608
        _UNFINISHED,
        limit,
    )
    return [_upload(r) for r in rows]


async def finished_not_cleaned(conn: asyncpg.Connection, limit: int) -> list[TusUpload]:
    """Finished uploads whose temporary bytes are still to be removed (a failed or
    interrupted cleanup); a minute's grace keeps clear of the request finishing them."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM tus_uploads
            WHERE NOT (status = ANY($1::text[])) AND cleaned_at IS NULL
              AND updated_at < now() - interval '1 minute'
            ORDER BY updated_at LIMIT $2""",  # noqa: S608
        _UNFINISHED,
        limit,
    )
    return [_upload(r) for r in rows]


async def purge_finished(conn: asyncpg.Connection, keep_seconds: int) -> int:
    """Forget finished, cleaned rows once `keep_seconds` past their expiry (until then
    HEAD still answers 410 or names the video)."""
    result = await conn.execute(
        """DELETE FROM tus_uploads
           WHERE NOT (status = ANY($1::text[])) AND cleaned_at IS NOT NULL
             AND expires_at < now() - make_interval(secs => $2)""",
        _UNFINISHED,
        float(keep_seconds),
    )
    return int(result.split()[-1])


async def try_lock(conn: asyncpg.Connection, upload_id: uuid.UUID) -> bool:
    """A session advisory lock on the upload: held for a whole PATCH (or DELETE, or
    completion) on this connection, and dropped by PostgreSQL if the process dies."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended('tus:' || $1::uuid::text, 0))", upload_id
        )
    )


async def unlock(conn: asyncpg.Connection, upload_id: uuid.UUID) -> None:
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtextextended('tus:' || $1::uuid::text, 0))", upload_id
    )
