"""`DirectUploadService`: one-time upload URLs for callers without credentials.

A creator (a user, or an API key with `videos:write`) fixes the constraints
— maximum size, expiry, allowed types, `process`, metadata, a CORS origin —
and gets a URL holding a secret (stored only as its SHA-256). Whoever holds
the URL may upload one file to it, which becomes the creator's video:

1. the row moves waiting → uploading under a row lock (a second request
   while one is in flight: 409; after use, cancel or expiry: 410);
2. the body takes the plain upload's road (`UploadService.receive`) with the
   row's limits, and the row moves uploading → done in the video's own
   transaction — so a cancel that lands mid-upload makes the upload fail and
   its object be discarded, never a video without its `done`;
3. any failure moves it back to waiting (the URL stays usable until its
   expiry; the creator sees why only in the uploader's answer);
4. `direct_upload.completed` goes to the creator's sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from config.settings import Settings
from server.db import direct_uploads as db
from server.directuploads import state
from server.directuploads.model import (
    CANCELED,
    DONE,
    UPLOADING,
    CreatedDirectUpload,
    DirectUpload,
)
from server.errors import Conflict, Gone, NotFound, PayloadTooLarge
from server.jobs.operations.protocol import Operation
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.uploads.service import StoredUpload, UploadService

log = get_logger("frameflow.directuploads")

MIN_EXPIRY_SECONDS = 60
MAX_EXPIRY_SECONDS = 7 * 24 * 3600
DEFAULT_EXPIRY_SECONDS = 3600


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class DirectUploadService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        uploads: UploadService,
        publisher: EventPublisher,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._uploads = uploads
        self._publisher = publisher

    @property
    def max_size(self) -> int:
        return self._settings.max_upload_bytes

    def parse_process(self, raw: str | None) -> list[Operation]:
        return self._uploads.parse_process(raw)

    def parse_ttl(self, raw: str | None) -> int | None:
        return self._uploads.parse_ttl(raw)

    async def create(
        self,
        user_id: uuid.UUID,
        *,
        max_bytes: int,
        expires_in_seconds: int,
        allowed_types: Sequence[str],
        process: Sequence[Operation],
        ttl_seconds: int | None,
        metadata: dict[str, Any],
        cors_origin: str | None,
    ) -> CreatedDirectUpload:
        token = secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn:
            upload = await db.insert(
                conn,
                id=uuid.uuid4(),
                user_id=user_id,
                token_sha256=token_hash(token),
                max_bytes=max_bytes,
                allowed_types=list(allowed_types),
                process=[op.name for op in process],
                ttl_seconds=ttl_seconds,
                metadata=metadata,
                cors_origin=cors_origin,
                expires_in_seconds=expires_in_seconds,
            )
        log.info("direct_upload_created", direct_upload_id=str(upload.id))
        return CreatedDirectUpload(upload, token)

    async def get(self, user_id: uuid.UUID, upload_id: uuid.UUID) -> DirectUpload:
        async with self._pool.acquire() as conn:
            upload = await db.get(conn, upload_id, user_id)
        if upload is None:
            raise NotFound("No such direct upload", code="direct_upload_not_found")
        return upload

    async def cancel(self, user_id: uuid.UUID, upload_id: uuid.UUID) -> DirectUpload:
        upload = await self.get(user_id, upload_id)
        if upload.status in (DONE, CANCELED) or upload.expired:
            raise Conflict(
                f"The direct upload is {upload.shown_status}",
                code="direct_upload_finished",
                status=upload.shown_status,
            )
        async with self._pool.acquire() as conn:
            canceled = await state.cancel(conn, upload)
        if canceled is None:
            raise Conflict("The direct upload changed; try again", code="direct_upload_changed")
        log.info("direct_upload_canceled", direct_upload_id=str(upload.id))
        return canceled

    async def for_token(self, token: str) -> DirectUpload:
        """The upload a URL names, usable or not (CORS preflights answer either way)."""
        async with self._pool.acquire() as conn:
            upload = await db.get_by_token(conn, token_hash(token))
        if upload is None:
            raise NotFound("No such upload URL", code="direct_upload_not_found")
        return upload

    async def receive(
        self,
        token: str,
        *,
        filename: str,
        chunks: AsyncIterator[bytes],
        declared_size: int | None,
    ) -> tuple[DirectUpload, StoredUpload]:
        """PUT to the URL: the file becomes the creator's video (see the module's steps)."""
        upload = await self._start(token, declared_size)
        video_id = uuid.uuid4()

        async def mark_done(conn: asyncpg.Connection) -> None:
            if await state.finish(conn, upload, video_id) is None:
                raise Gone("This upload URL was canceled", code="direct_upload_canceled")

        try:
            stored = await self._uploads.receive(
                user_id=upload.user_id,
                filename=filename,
                chunks=chunks,
                declared_size=declared_size,
                process=self._uploads.parse_process(",".join(upload.process) or None),
                ttl_seconds=upload.ttl_seconds,
                max_bytes=upload.max_bytes,
                allowed_types=upload.allowed_types,
                video_id=video_id,
                before_insert=mark_done,
            )
        except BaseException:
            await asyncio.shield(self._release(upload))
            raise
        done = await self.get(upload.user_id, upload.id)
        log.info("direct_upload_completed", direct_upload_id=str(upload.id), video_id=str(video_id))
        self._publisher.direct_upload_completed(done)
        return done, stored

    async def _start(self, token: str, declared_size: int | None) -> DirectUpload:
        async with self._pool.acquire() as conn:
            upload = await db.get_by_token(conn, token_hash(token))
            if upload is None:
                raise NotFound("No such upload URL", code="direct_upload_not_found")
            self._check_usable(upload)
            if declared_size is not None and declared_size > upload.max_bytes:
                raise PayloadTooLarge(
                    f"This upload URL takes at most {upload.max_bytes} bytes",
                    limit=upload.max_bytes,
                )
            started = await state.start(conn, upload)
        if started is None:  # another request took it between the read and the UPDATE
            raise Conflict("An upload to this URL is in progress", code="direct_upload_in_progress")
        return started

    @staticmethod
    def _check_usable(upload: DirectUpload) -> None:
        if upload.expired:
            raise Gone("This upload URL has expired", code="direct_upload_expired")
        if upload.status == DONE:
            raise Gone("This upload URL has been used", code="direct_upload_used")
        if upload.status == CANCELED:
            raise Gone("This upload URL was canceled", code="direct_upload_canceled")
        if upload.status == UPLOADING:
            raise Conflict("An upload to this URL is in progress", code="direct_upload_in_progress")

    async def _release(self, upload: DirectUpload) -> None:
        try:
            async with self._pool.acquire() as conn:
                await state.release(conn, upload)
        except Exception:
            log.exception("direct_upload_release_failed", direct_upload_id=str(upload.id))
