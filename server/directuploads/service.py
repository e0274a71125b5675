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

With tus, the URL's `.../tus/` creates one tus upload (as the creator, with
`Upload-Length` at most `max_size`, the row moving to uploading and naming
it); HEAD and PATCH to that upload go through `TusService` with the row's
allowed types, and the request that sees it completed moves the row to done.
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
from server.db import users as users_db
from server.directuploads import state
from server.directuploads.model import (
    CANCELED,
    DONE,
    UPLOADING,
    CreatedDirectUpload,
    DirectUpload,
)
from server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    HTTPError,
    NotFound,
    PayloadTooLarge,
)
from server.jobs.operations.protocol import Operation
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.tus.headers import Checksum
from server.tus.model import COMPLETED, TusUpload
from server.tus.service import TusService
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
        tus: TusService,
        publisher: EventPublisher,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._uploads = uploads
        self._tus = tus
        self._publisher = publisher

    @property
    def max_size(self) -> int:
        return self._settings.max_upload_bytes

    def parse_process(self, raw: str | None) -> list[Operation]:
        return self._uploads.parse_process(raw)

    def parse_ttl(self, raw: str | None) -> int | None:
        return self._uploads.parse_ttl(raw)

    async def parse_preset(self, user_id: uuid.UUID, name: str | None) -> str | None:
        """The creator's preset to queue at completion, checked now as an upload's
        `?preset=` is (400 `preset_not_found` on `preset`); None for none."""
        await self._uploads.parse_preset(user_id, name)
        return name or None

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
        preset: str | None = None,
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
                preset=preset,
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
        if upload.status == UPLOADING and upload.tus_upload_id is not None:
            # Its tus upload ends too (bytes and quota hold given back); one finishing
            # right now wins the race, and the cancel below then changes nothing.
            try:
                await self._tus.terminate(upload.user_id, upload.tus_upload_id)
            except HTTPError as exc:
                log.info("direct_upload_tus_not_terminated", code=exc.error_code)
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

        async def mark_done(conn: asyncpg.Connection, stored_id: uuid.UUID) -> None:
            if await state.finish(conn, upload, stored_id) is None:
                raise Gone("This upload URL was canceled", code="direct_upload_canceled")

        try:
            # Read again now: a preset deleted or renamed since refuses the file (400,
            # before its bytes are read) and leaves the URL usable, as for tus.
            preset = await self._uploads.parse_preset(upload.user_id, upload.preset)
            stored = await self._uploads.receive(
                user_id=upload.user_id,
                filename=filename,
                chunks=chunks,
                declared_size=declared_size,
                process=self._uploads.parse_process(",".join(upload.process) or None),
                preset=preset,
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
        log.info(
            "direct_upload_completed",
            direct_upload_id=str(upload.id),
            video_id=str(stored.video.id),
        )
        self._publisher.direct_upload_completed(done)
        return done, stored

    async def _start(self, token: str, declared_size: int | None) -> DirectUpload:
        async with self._pool.acquire() as conn:
            upload = await db.get_by_token(conn, token_hash(token))
            if upload is None:
                raise NotFound("No such upload URL", code="direct_upload_not_found")
            self._check_usable(upload)
            access = await users_db.access_of(conn, upload.user_id)
            if access is not None and access[1]:  # the URL speaks for a disabled account
                raise Forbidden(
                    "The account that made this URL is disabled", code="account_disabled"
                )
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

    # --- tus ---------------------------------------------------------------------------

    async def tus_create(
        self, token: str, *, length: int | None, metadata: dict[str, str], filename: str
    ) -> TusUpload:
        """tus creation at the URL: one upload, as the creator, of at most `max_size`."""
        if length is None:
            raise BadRequest(
                "A direct upload needs Upload-Length at creation",
                code="missing_header",
                header="Upload-Length",
            )
        upload = await self._start(token, length)
        try:
            # The uploader's metadata is only the file's name and type; the options
            # are the creator's.
            options = {k: v for k, v in metadata.items() if k in ("filename", "filetype")}
            if upload.process:
                options["process"] = ",".join(upload.process)
            if upload.ttl_seconds is not None:
                options["ttl"] = str(upload.ttl_seconds)
            if upload.preset is not None:
                options["preset"] = upload.preset  # checked at creation and completion
            created = await self._tus.create(
                upload.user_id, length=length, metadata=options, filename=filename
            )
            async with self._pool.acquire() as conn:
                if await db.set_tus_upload(conn, upload.id, created.upload.id) is None:
                    raise Gone("This upload URL was canceled", code="direct_upload_canceled")
        except BaseException:
            await asyncio.shield(self._release(upload))
            raise
        return created.upload

    async def tus_status(self, token: str, tus_upload_id: uuid.UUID) -> TusUpload:
        direct = await self._tus_direct(token, tus_upload_id)
        try:
            upload = await self._tus.status(
                direct.user_id, tus_upload_id, allowed_types=direct.allowed_types
            )
        except HTTPError as exc:
            await self._after_tus_error(direct, exc)
            raise
        return await self._after_tus(direct, upload)

    async def tus_append(
        self,
        token: str,
        tus_upload_id: uuid.UUID,
        *,
        offset: int,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        checksum: Checksum | None,
    ) -> TusUpload:
        direct = await self._tus_direct(token, tus_upload_id)
        try:
            upload = await self._tus.append(
                direct.user_id,
                tus_upload_id,
                offset=offset,
                chunks=chunks,
                content_length=content_length,
                checksum=checksum,
                allowed_types=direct.allowed_types,
            )
        except HTTPError as exc:
            await self._after_tus_error(direct, exc)
            raise
        return await self._after_tus(direct, upload)

    async def _tus_direct(self, token: str, tus_upload_id: uuid.UUID) -> DirectUpload:
        """The direct upload whose URL sends this tus upload: dead once canceled or
        expired; once done, HEAD and a repeated last PATCH still name the video."""
        direct = await self.for_token(token)
        if direct.tus_upload_id != tus_upload_id:
            raise NotFound("No such upload", code="upload_not_found")
        if direct.status != DONE:
            if direct.expired:
                raise Gone("This upload URL has expired", code="direct_upload_expired")
            if direct.status == CANCELED:
                raise Gone("This upload URL was canceled", code="direct_upload_canceled")
        return direct

    async def _after_tus(self, direct: DirectUpload, upload: TusUpload) -> TusUpload:
        if upload.status == COMPLETED and direct.status == UPLOADING:
            async with self._pool.acquire() as conn:
                done = await state.finish(conn, direct, upload.video_id)
            if done is not None:
                log.info(
                    "direct_upload_completed",
                    direct_upload_id=str(done.id),
                    video_id=str(upload.video_id),
                )
                self._publisher.direct_upload_completed(done)
        return upload

    async def _after_tus_error(self, direct: DirectUpload, exc: HTTPError) -> None:
        """A tus upload refused at completion (or gone) frees the URL for another try."""
        if direct.status == UPLOADING and exc.status in (410, 415, 422):
            await self._release(direct)
