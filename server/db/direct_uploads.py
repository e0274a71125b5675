"""SQL for the `direct_uploads` table (sql/010_direct_uploads.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from server.directuploads.model import DirectUpload

_COLUMNS = (
    "id, user_id, status, max_bytes, allowed_types, process, ttl_seconds, preset, metadata, "
    "cors_origin, video_id, tus_upload_id, created_at, updated_at, expires_at"
)


def _row(row: asyncpg.Record | None) -> DirectUpload | None:
    if row is None:
        return None
    values = dict(row)
    values["allowed_types"] = list(values["allowed_types"])
    values["process"] = list(values["process"])
    return DirectUpload(**values)


def direct_upload_from_snapshot(row: Mapping[str, Any]) -> DirectUpload:
    """A direct upload from `to_jsonb(direct_uploads_row)`, as the webhook trigger
    records it (without `token_sha256`)."""
    values: dict[str, Any] = {name: row.get(name) for name in DirectUpload.__dataclass_fields__}
    for name in ("id", "user_id", "video_id", "tus_upload_id"):
        if values[name] is not None:
            values[name] = uuid.UUID(str(values[name]))
    for name in ("created_at", "updated_at", "expires_at"):
        values[name] = datetime.fromisoformat(str(values[name]))
    values["allowed_types"] = list(values["allowed_types"] or [])
    values["process"] = list(values["process"] or [])
    values["metadata"] = values["metadata"] or {}
    return DirectUpload(**values)


async def insert(
    conn: asyncpg.Connection,
    *,
    id: uuid.UUID,
    user_id: uuid.UUID,
    token_sha256: bytes,
    max_bytes: int,
    allowed_types: list[str],
    process: list[str],
    ttl_seconds: int | None,
    preset: str | None,
    metadata: dict[str, Any],
    cors_origin: str | None,
    expires_in_seconds: int,
) -> DirectUpload:
    row = await conn.fetchrow(
        f"""
        INSERT INTO direct_uploads (id, user_id, token_sha256, max_bytes, allowed_types,
                                    process, ttl_seconds, metadata, cors_origin, expires_at,
                                    preset)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9,
                now() + make_interval(secs => $10), $11)
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        id,
        user_id,
        token_sha256,
        max_bytes,
        allowed_types,
        process,
        ttl_seconds,
        metadata,  # the pool's jsonb codec encodes it
        cors_origin,
        float(expires_in_seconds),
        preset,
    )
    upload = _row(row)
    assert upload is not None
    return upload


async def get(
    conn: asyncpg.Connection, upload_id: uuid.UUID, user_id: uuid.UUID
) -> DirectUpload | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM direct_uploads WHERE id = $1 AND user_id = $2",  # noqa: S608
        upload_id,
        user_id,
    )
    return _row(row)


async def get_by_token(conn: asyncpg.Connection, token_sha256: bytes) -> DirectUpload | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM direct_uploads WHERE token_sha256 = $1",  # noqa: S608
        token_sha256,
    )
    return _row(row)


async def set_status(
    conn: asyncpg.Connection,
    upload_id: uuid.UUID,
    source: str,
    target: str,
    *,
    video_id: uuid.UUID | None = None,
) -> DirectUpload | None:
    """Guarded: changes the row only while it is still `source`."""
    row = await conn.fetchrow(
        f"""
        UPDATE direct_uploads
           SET status = $3, video_id = COALESCE($4, video_id), updated_at = now()
         WHERE id = $1 AND status = $2
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        upload_id,
        source,
        target,
        video_id,
    )
    return _row(row)


async def set_tus_upload(
    conn: asyncpg.Connection, upload_id: uuid.UUID, tus_upload_id: uuid.UUID
) -> DirectUpload | None:
    row = await conn.fetchrow(
        f"""
        UPDATE direct_uploads SET tus_upload_id = $2, updated_at = now()
         WHERE id = $1 AND status = 'uploading'
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - column list is a constant
        upload_id,
        tus_upload_id,
    )
    return _row(row)


# URLs that can never be used again: waiting ones past expiry, or canceled. Done
# rows stay (they name the video); an `uploading` row stays until its tus upload has
# been swept and the row released back to `waiting`.
_DEAD = "status IN ('waiting', 'canceled') AND expires_at < $1"


async def count_dead(conn: asyncpg.Connection, expired_before: datetime) -> int:
    query = f"SELECT count(*) FROM direct_uploads WHERE {_DEAD}"  # noqa: S608 (constant)
    return int(await conn.fetchval(query, expired_before))


async def delete_dead(conn: asyncpg.Connection, expired_before: datetime) -> int:
    query = f"DELETE FROM direct_uploads WHERE {_DEAD}"  # noqa: S608 (constant)
    result: str = await conn.execute(query, expired_before)
    return int(result.split()[-1])
