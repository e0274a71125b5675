"""SQL for `generations`.

Statements that change `status` are called from server.generations.state
only; each is guarded by the status the caller read, and returns None when
the row has moved on meanwhile.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from server.db import paging
from server.generations.model import Generation

_COLUMNS = (
    "id, user_id, job_id, status, progress, provider, model, prompt, negative_prompt,"
    " image_id, duration_seconds, resolution, aspect_ratio, seed, process, estimate_credits,"
    " hold_id, credits_charged, remote_task_id, error_code, error, video_id, idempotency_key,"
    " request_hash, created_at, updated_at, finished_at"
)


def _generation(row: asyncpg.Record | None) -> Generation | None:
    if row is None:
        return None
    values = dict(row)
    values["process"] = list(values["process"] or [])
    return Generation(**values)


async def insert_generation(
    conn: asyncpg.Connection, generation_id: uuid.UUID, user_id: uuid.UUID, **values: Any
) -> Generation | None:
    """The new row; None when the user already has one with this idempotency key."""
    names = ["id", "user_id", *values]
    params = [generation_id, user_id, *values.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(params) + 1))
    row = await conn.fetchrow(
        f"""
        INSERT INTO generations ({", ".join(names)}) VALUES ({placeholders})
        ON CONFLICT (user_id, idempotency_key) DO NOTHING
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - names come from our own keyword arguments
        *params,
    )
    return _generation(row)


async def attach_work(
    conn: asyncpg.Connection, generation_id: uuid.UUID, job_id: uuid.UUID, hold_id: uuid.UUID
) -> Generation:
    row = await conn.fetchrow(
        f"""UPDATE generations SET job_id = $2, hold_id = $3, updated_at = now()
            WHERE id = $1 RETURNING {_COLUMNS}""",  # noqa: S608
        generation_id,
        job_id,
        hold_id,
    )
    found = _generation(row)
    assert found is not None
    return found


async def get_generation(
    conn: asyncpg.Connection,
    generation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    *,
    lock: bool = False,
) -> Generation | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM generations
            WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
            {"FOR UPDATE" if lock else ""}""",  # noqa: S608
        generation_id,
        user_id,
    )
    return _generation(row)


async def get_by_idempotency_key(
    conn: asyncpg.Connection, user_id: uuid.UUID, key: str
) -> Generation | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM generations WHERE user_id = $1 AND idempotency_key = $2",  # noqa: S608
        user_id,
        key,
    )
    return _generation(row)


async def get_by_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, *, lock: bool = False
) -> Generation | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM generations WHERE job_id = $1
            {"FOR UPDATE" if lock else ""}""",  # noqa: S608
        job_id,
    )
    return _generation(row)


async def list_generations(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Generation]:
    rows = await paging.newest_first(
        conn,
        columns=_COLUMNS,
        table="generations",
        owned_by="user_id = $1",
        user_id=user_id,
        limit=limit,
        before=before,
    )
    return [g for g in (_generation(r) for r in rows) if g is not None]


async def set_status(
    conn: asyncpg.Connection,
    generation_id: uuid.UUID,
    source: str,
    target: str,
    *,
    remote_task_id: str | None = None,
    error_code: str | None = None,
    error: str | None = None,
    video_id: uuid.UUID | None = None,
    credits_charged: int | None = None,
    progress: float | None = None,
) -> Generation | None:
    """source → target, guarded; the optional columns are set when given (never cleared)."""
    row = await conn.fetchrow(
        f"""
        UPDATE generations SET
            status = $3,
            remote_task_id = COALESCE($4, remote_task_id),
            error_code = COALESCE($5, error_code),
            error = COALESCE($6, error),
            video_id = COALESCE($7, video_id),
            credits_charged = COALESCE($8, credits_charged),
            progress = COALESCE($9, progress),
            updated_at = now(),
            finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'canceled')
                               THEN now() ELSE finished_at END
        WHERE id = $1 AND status = $2
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        generation_id,
        source,
        target,
        remote_task_id,
        error_code,
        error,
        video_id,
        credits_charged,
        progress,
    )
    return _generation(row)


async def update_progress(
    conn: asyncpg.Connection, generation_id: uuid.UUID, progress: float
) -> Generation | None:
    """Progress only moves forward, and only while the generation is unfinished."""
    row = await conn.fetchrow(
        f"""
        UPDATE generations SET progress = GREATEST(progress, $2), updated_at = now()
        WHERE id = $1 AND status IN ('queued', 'submitted', 'running')
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        generation_id,
        progress,
    )
    return _generation(row)
