"""Receive one upload as a stream of chunks and turn it into a `videos` row.

Order matters for "nothing is lost, nothing is left behind":
1. sniff the first bytes (415 before anything is stored),
2. stream into a storage writer while counting and hashing (413 mid-stream
   aborts the writer: no temp file, no multipart upload),
3. commit the object, probe it (422 deletes it),
4. reserve quota and insert the row in one transaction (any failure deletes
   the object). The row is visible only once the object is complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from config.settings import Settings
from server import appkeys
from server.db import videos as videos_db
from server.errors import (
    BadRequest,
    ClientClosedRequest,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from server.jobs import service as jobs_service
from server.jobs.model import Job
from server.jobs.operations.base import Operation
from server.live.events import video_ready_event
from server.logs import get_logger
from server.media.probe import ProbeError
from server.media.process import FfmpegTimeout
from server.media.sniff import SNIFF_BYTES, SniffResult, sniff
from server.object_keys import source_key

if TYPE_CHECKING:
    from server.storage.base import ObjectWriter

log = get_logger("frameflow.uploads")


class UploadTracker:
    """The writers of uploads in flight, so shutdown can abort any left over."""

    def __init__(self) -> None:
        self._writers: set[ObjectWriter] = set()

    def add(self, writer: ObjectWriter) -> None:
        self._writers.add(writer)

    def discard(self, writer: ObjectWriter) -> None:
        self._writers.discard(writer)

    def __len__(self) -> int:
        return len(self._writers)

    async def abort_all(self) -> None:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            await writer.abort()
        if writers:
            log.warning("uploads_aborted_at_shutdown", count=len(writers))


@dataclass(frozen=True)
class StoredUpload:
    video: videos_db.Video
    jobs: list[Job]


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int  # the server-wide size limit
    headroom: int  # what the user's quota still allows

    def check_declared(self, size: int | None) -> None:
        if size is not None:
            self.check(size)

    def check(self, size: int) -> None:
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"Uploads are limited to {self.max_bytes} bytes", limit=self.max_bytes
            )
        if size > self.headroom:
            raise PayloadTooLarge(
                f"This upload would exceed your storage quota ({self.headroom} bytes left)",
                code="quota_exceeded",
                remaining=self.headroom,
            )


# Shorter than this, a video could expire before its first job is even queued.
MIN_TTL_SECONDS = 60


def parse_ttl(settings: Settings, raw: str | None) -> int | None:
    """The `ttl` an upload asked for (seconds), or None for the default."""
    if raw is None or raw.strip() == "":
        return None
    limit = settings.video_max_ttl_seconds
    try:
        ttl = int(raw.strip())
    except ValueError:
        ttl = -1
    if not MIN_TTL_SECONDS <= ttl <= limit:
        raise BadRequest(
            f"'ttl' must be a whole number of seconds from {MIN_TTL_SECONDS} to {limit}",
            code="invalid_ttl",
            field="ttl",
            max_ttl_seconds=limit,
        )
    return ttl


async def upload_limits(app: web.Application, user_id: uuid.UUID) -> UploadLimits:
    async with app[appkeys.POOL].acquire() as conn:
        headroom = await videos_db.quota_headroom(conn, user_id)
    return UploadLimits(app[appkeys.SETTINGS].max_upload_bytes, headroom)


async def _read_head(chunks: AsyncIterator[bytes]) -> bytes:
    """At least SNIFF_BYTES from the stream (fewer only at its end)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return bytes(head)


async def receive_upload(
    app: web.Application,
    *,
    user_id: uuid.UUID,
    filename: str,
    chunks: AsyncIterator[bytes],
    declared_size: int | None,
    process: Sequence[Operation] = (),
    ttl_seconds: int | None = None,
) -> StoredUpload:
    """Store one upload; with `process`, queue those operations in the same transaction.

    `ttl_seconds` (checked by `parse_ttl`) defaults to `video_ttl_seconds`."""
    ttl = app[appkeys.SETTINGS].video_ttl_seconds if ttl_seconds is None else ttl_seconds
    limits = await upload_limits(app, user_id)
    limits.check_declared(declared_size)
    try:
        head = await _read_head(chunks)
        sniffed = sniff(head)
        if sniffed is None:
            raise UnsupportedMediaType(
                "Not a supported video or image (mp4/mov, webm/mkv, avi, mpeg-ts, jpeg, png, webp)"
            )
        jobs_service.check_process_kind(process, sniffed.kind)
        video_id = uuid.uuid4()
        key = source_key(user_id, video_id)
        size, sha256 = await _stream_to_storage(app, key, sniffed, head, chunks, limits)
    except (ConnectionResetError, HttpProcessingError) as exc:
        # The client went away or sent a broken body; the writer has been aborted.
        app[appkeys.METRICS].uploads.labels("aborted").inc()
        log.info("upload_aborted", reason=str(exc) or type(exc).__name__)
        raise ClientClosedRequest() from None
    except Exception:
        app[appkeys.METRICS].uploads.labels("rejected").inc()
        raise
    if declared_size is not None and size != declared_size:
        await _discard(app, key)
        raise BadRequest("The body ended before Content-Length bytes", code="incomplete_body")
    try:
        stored = await _probe_and_record(
            app, video_id, user_id, key, filename, sniffed, size, sha256, process, ttl
        )
    except BaseException:
        await _discard(app, key)
        app[appkeys.METRICS].uploads.labels("rejected").inc()
        raise
    app[appkeys.METRICS].uploads.labels("stored").inc()
    app[appkeys.METRICS].bytes_uploaded.inc(size)
    video = stored.video
    log.info("upload_stored", video_id=str(video.id), size=size, content_type=video.content_type)
    app[appkeys.BUS].publish(video_ready_event(video))
    deps = jobs_service.JobDeps.from_app(app)
    for job in stored.jobs:
        await deps.publish("job.queued", job)
    return stored


async def _stream_to_storage(
    app: web.Application,
    key: str,
    sniffed: SniffResult,
    head: bytes,
    chunks: AsyncIterator[bytes],
    limits: UploadLimits,
) -> tuple[int, str]:
    storage, tracker, metrics = app[appkeys.STORAGE], app[appkeys.UPLOADS], app[appkeys.METRICS]
    digest = hashlib.sha256()
    size = 0
    metrics.uploads_in_flight.inc()
    try:
        async with storage.writer(key, sniffed.content_type) as writer:
            tracker.add(writer)
            try:
                pending: bytes | None = head
                while pending is not None:
                    size += len(pending)
                    limits.check(size)
                    digest.update(pending)
                    await writer.write(pending)
                    pending = await anext(chunks, None)
                await writer.commit()
            finally:
                tracker.discard(writer)
    finally:
        metrics.uploads_in_flight.dec()
    return size, digest.hexdigest()


async def _probe_and_record(
    app: web.Application,
    video_id: uuid.UUID,
    user_id: uuid.UUID,
    key: str,
    filename: str,
    sniffed: SniffResult,
    size: int,
    sha256: str,
    process: Sequence[Operation],
    ttl_seconds: int,
) -> StoredUpload:
    try:
        async with app[appkeys.STORAGE].local_path(key) as path:
            # Hook (issue 9, items 13 and 21): malware scan, then the bounded, sandboxed probe.
            await app[appkeys.SCANNER].require_clean(path)
            info = await app[appkeys.PROBER].probe(path, sniffed.demuxer)
    except ProbeError as exc:
        raise Unprocessable(f"The file cannot be decoded: {exc}", code="undecodable") from None
    except FfmpegTimeout:
        raise Unprocessable("Probing the file took too long", code="probe_timeout") from None
    candidate = videos_db.Video(
        id=video_id,
        user_id=user_id,
        filename=filename,
        storage_key=key,
        size=size,
        sha256=sha256,
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        status="ready",
        metadata=info.to_json(),
        created_at=datetime.now(UTC),
    )
    deps = jobs_service.JobDeps.from_app(app)
    # Default params are checked against the probed metadata before anything
    # is kept: a 400 here still discards the object.
    planned = jobs_service.plan_jobs(deps, process, candidate)
    await jobs_service.check_planned_quota(deps, user_id, planned, candidate, also_needed=size)
    async with app[appkeys.POOL].acquire() as conn, conn.transaction():
        if not await videos_db.reserve_quota(conn, user_id, size):
            raise PayloadTooLarge(
                "This upload would exceed your storage quota", code="quota_exceeded"
            )
        video = await videos_db.insert_video(
            conn,
            id=candidate.id,
            user_id=candidate.user_id,
            filename=candidate.filename,
            storage_key=candidate.storage_key,
            size=candidate.size,
            sha256=candidate.sha256,
            content_type=candidate.content_type,
            kind=candidate.kind,
            metadata=candidate.metadata,
            ttl_seconds=ttl_seconds,
        )
        jobs = await jobs_service.insert_planned_jobs(conn, deps, video, planned)
    return StoredUpload(video, jobs)


async def _discard(app: web.Application, key: str) -> None:
    # Shielded: runs on the way out of a cancelled request too.
    try:
        await asyncio.shield(app[appkeys.STORAGE].delete(key))
    except Exception:
        log.exception("orphan_object_delete_failed", key=key)
