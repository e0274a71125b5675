"""The one module that changes a direct upload's status.

Every change is a guarded UPDATE that matches only while the row is still in
the state the caller saw; a stale caller gets None and must not go on.
"""

from __future__ import annotations

import uuid

import asyncpg

from server.db import direct_uploads as db
from server.directuploads.model import CANCELED, DONE, UPLOADING, WAITING, DirectUpload

TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (WAITING, UPLOADING),  # the URL's holder starts sending
        # The body broke off or was refused: the URL stays usable until its expiry.
        (UPLOADING, WAITING),
        (UPLOADING, DONE),  # in the video's own transaction
        (WAITING, CANCELED),
        (UPLOADING, CANCELED),  # the upload in flight then fails to become `done`
    }
)


class IllegalTransition(RuntimeError):
    """A bug: code asked for a status change the table does not allow."""


def _check(source: str, target: str) -> None:
    if (source, target) not in TRANSITIONS:
        raise IllegalTransition(f"direct upload: {source} → {target} is not allowed")


async def start(conn: asyncpg.Connection, upload: DirectUpload) -> DirectUpload | None:
    _check(WAITING, UPLOADING)
    return await db.set_status(conn, upload.id, WAITING, UPLOADING)


async def release(conn: asyncpg.Connection, upload: DirectUpload) -> DirectUpload | None:
    _check(UPLOADING, WAITING)
    return await db.set_status(conn, upload.id, UPLOADING, WAITING)


async def finish(
    conn: asyncpg.Connection, upload: DirectUpload, video_id: uuid.UUID
) -> DirectUpload | None:
    _check(UPLOADING, DONE)
    return await db.set_status(conn, upload.id, UPLOADING, DONE, video_id=video_id)


async def cancel(conn: asyncpg.Connection, upload: DirectUpload) -> DirectUpload | None:
    _check(upload.status, CANCELED)
    return await db.set_status(conn, upload.id, upload.status, CANCELED)
