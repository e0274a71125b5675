"""The one module that changes a tus upload's status.

Allowed transitions are listed in `TRANSITIONS`; every change goes through
`_check` and then a guarded UPDATE in `server.db.tus` that matches only
while the row is still in the status the caller believes. Each change that
ends an upload gives its quota hold back in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from server.db import tus as tus_db
from server.quota.ledger import QuotaLedger
from server.storage.base import AppendState
from server.tus.model import (
    COMPLETED,
    COMPLETING,
    EXPIRED,
    FAILED,
    TERMINATED,
    UPLOADING,
    TusStatus,
    TusUpload,
)

TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (UPLOADING, COMPLETING),  # every byte stored
        (COMPLETING, COMPLETED),  # in the transaction that inserts the video
        (COMPLETING, FAILED),  # refused: not a video, undecodable, process or quota
        (UPLOADING, TERMINATED),  # the client's DELETE
        (COMPLETING, TERMINATED),
        (UPLOADING, EXPIRED),  # the sweep, once expires_at has passed
        (COMPLETING, EXPIRED),
    }
)


class IllegalTransition(RuntimeError):
    """A bug: code asked for a status change the state machine does not allow."""

    def __init__(self, upload: TusUpload, target: str) -> None:
        super().__init__(f"tus upload {upload.id}: {upload.status} → {target} is not allowed")


def _check(upload: TusUpload, target: TusStatus) -> None:
    if (upload.status, target) not in TRANSITIONS:
        raise IllegalTransition(upload, target)


async def start_completing(
    conn: asyncpg.Connection, upload: TusUpload, storage: AppendState
) -> TusUpload | None:
    """uploading → completing, with the state that stores the last byte."""
    _check(upload, COMPLETING)
    return await tus_db.change_status(conn, upload.id, UPLOADING, COMPLETING, storage=storage)


async def complete(
    conn: asyncpg.Connection, upload: TusUpload, video_id: uuid.UUID
) -> TusUpload | None:
    """completing → completed, inside the transaction that inserts the video: the hold
    is given back there, just before the video itself is charged. `video_id` is the
    video it became: another one than planned when the bytes are an image already in
    the user's library."""
    _check(upload, COMPLETED)
    async with conn.transaction():
        done = await tus_db.change_status(conn, upload.id, COMPLETING, COMPLETED)
        if done is not None:
            await QuotaLedger.release_tus(conn, upload.user_id, upload.id)
            if video_id != upload.video_id:
                await tus_db.set_video_id(conn, upload.id, video_id)
        return done


async def fail(
    conn: asyncpg.Connection, upload: TusUpload, error: dict[str, Any]
) -> TusUpload | None:
    return await _end(conn, upload, FAILED, error=error)


async def terminate(conn: asyncpg.Connection, upload: TusUpload) -> TusUpload | None:
    return await _end(conn, upload, TERMINATED)


async def expire(conn: asyncpg.Connection, upload: TusUpload) -> TusUpload | None:
    """Only once expires_at has passed by the database's clock."""
    return await _end(conn, upload, EXPIRED, only_if_expired=True)


async def _end(
    conn: asyncpg.Connection,
    upload: TusUpload,
    target: TusStatus,
    *,
    error: dict[str, Any] | None = None,
    only_if_expired: bool = False,
) -> TusUpload | None:
    _check(upload, target)
    async with conn.transaction():
        done = await tus_db.change_status(
            conn, upload.id, upload.status, target, error=error, only_if_expired=only_if_expired
        )
        if done is not None:
            await QuotaLedger.release_tus(conn, upload.user_id, upload.id)
        return done
