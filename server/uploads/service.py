"""Receive one upload as a stream of chunks and turn it into a `videos` row.

Order matters for "nothing is lost, nothing is left behind":
1. sniff the first bytes (415 before anything is stored),
2. stream into a storage writer while counting and hashing (413 mid-stream
   aborts the writer: no temp file, no multipart upload),
3. commit the object, probe it (422 deletes it),
4. reserve quota and insert the row in one transaction (any failure deletes
   the object). The row is visible only once the object is complete.

An image (sniffed JPEG, PNG or WebP) also goes through `ImageIntake`
(uploads/images.py): over `image_max_bytes` it is refused mid-stream (422
`image_too_large`); at step 3 Pillow checks its dimensions and pixel count
(422 naming the limit) before ffmpeg probes it, reads its EXIF into the
metadata, and the thumbnail and the copy without EXIF are stored; the upload
as sent is deleted once the row is committed. At step 4 an image whose
uploaded bytes the user already has (same SHA-256; a partial unique index
makes it race-safe) is not inserted: every object of this upload is deleted,
nothing is charged, and the existing image is returned (`duplicate`).

`accept_stored` is the same road for an object that is already in storage
(a finished resumable upload): it sniffs the object's first bytes, then
joins at step 3. Its caller can ask to keep the object when the failure is
the server's (a 5xx, the database or storage unreachable, a cancellation):
the client has sent every byte and cannot send them again, so the object
waits for the next attempt. A refusal of the file itself still deletes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import asyncpg
from aiohttp.http_exceptions import HttpProcessingError

from config.settings import Settings
from server import data_dirs
from server.db import videos as videos_db
from server.errors import (
    BadRequest,
    ClientClosedRequest,
    Conflict,
    HTTPError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from server.inflight import InFlight, together
from server.jobs.model import Job
from server.jobs.operations.protocol import Operation
from server.jobs.service import JobService, PlannedJob, RequestedJob
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.media.probe import ProbeError
from server.media.prober import Prober
from server.media.process import FfmpegTimeout
from server.media.sniff import SNIFF_BYTES, SniffResult, sniff
from server.metrics import Metrics
from server.object_keys import source_key
from server.presets.service import PresetService
from server.quota.ledger import QuotaLedger
from server.scanning.service import ScanService
from server.storage.base import ObjectWriter, Storage
from server.uploads.images import ImageIntake
from server.videos.model import Video

# Queued after each upload when `thumbnail_after_upload` is on.
AUTO_THUMBNAIL = "thumbnail"

log = get_logger("frameflow.uploads")

# Runs first inside the transaction that inserts the video (see `accept_stored`),
# given the id of the video the upload becomes (an existing image's for a duplicate).
BeforeInsert = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[None]]


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
    video: Video
    jobs: list[Job]
    # An image the user already had (same bytes): nothing new was stored or charged.
    duplicate: bool = False


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


def type_allowed(content_type: str, allowed: Collection[str]) -> bool:
    """`video/mp4` matches `video/mp4` and `video/*`."""
    family = content_type.split("/", 1)[0] + "/*"
    return content_type in allowed or family in allowed


def _check_type(sniffed: SniffResult, allowed_types: Collection[str]) -> None:
    if allowed_types and not type_allowed(sniffed.content_type, allowed_types):
        raise UnsupportedMediaType(
            f"This upload accepts {', '.join(allowed_types)}; the file is {sniffed.content_type}",
            code="type_not_allowed",
            allowed_types=list(allowed_types),
        )


def refused_by_client(exc: BaseException) -> bool:
    """A refusal of the upload itself (415, 422, 413, 400): trying again cannot help.
    Anything else — a 5xx, a database or storage error, a cancellation — is the
    server's failure."""
    return isinstance(exc, HTTPError) and exc.status < 500


def _image_changed() -> Conflict:
    return Conflict(
        "An identical image was deleted while this one was stored; upload it again",
        code="upload_changed",
    )


def _unsupported() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "Not a supported video or image (mp4/mov, webm/mkv, avi, mpeg-ts, jpeg, png, webp)"
    )


async def _read_head(chunks: AsyncIterator[bytes]) -> bytes:
    """At least SNIFF_BYTES from the stream (fewer only at its end)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return bytes(head)


def _candidate(
    video_id: uuid.UUID,
    user_id: uuid.UUID,
    filename: str,
    key: str,
    size: int,
    sha256: str,
    sniffed: SniffResult,
) -> Video:
    """The video an accepted object becomes, before its probe fills in the metadata."""
    return Video(
        id=video_id,
        user_id=user_id,
        filename=filename,
        storage_key=key,
        size=size,
        sha256=sha256,
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        status="ready",
        metadata={},
        created_at=datetime.now(UTC),
    )


class UploadService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        storage: Storage,
        settings: Settings,
        prober: Prober,
        scanner: ScanService,
        quota: QuotaLedger,
        jobs: JobService,
        presets: PresetService,
        publisher: EventPublisher,
        metrics: Metrics,
    ) -> None:
        self._presets = presets
        self._pool = pool
        self._storage = storage
        self._settings = settings
        self._prober = prober
        self._scanner = scanner
        self._quota = quota
        self._jobs = jobs
        self._publisher = publisher
        self._metrics = metrics
        self._images = ImageIntake(storage=storage, settings=settings)
        self.tracker = UploadTracker()

    def parse_ttl(self, raw: str | None) -> int | None:
        return parse_ttl(self._settings, raw)

    def parse_process(self, raw: str | None) -> list[Operation]:
        return self._jobs.parse_process(raw)

    async def parse_preset(self, user_id: uuid.UUID, name: str | None) -> list[RequestedJob]:
        """`?preset=name`: the user's preset's operations (400 on `preset` when unknown)."""
        return await self._presets.for_upload(user_id, name)

    async def limits(self, user_id: uuid.UUID) -> UploadLimits:
        return UploadLimits(self._settings.max_upload_bytes, await self._quota.headroom(user_id))

    async def abort_in_flight(self) -> None:
        """Shutdown: uploads still streaming after the grace period are aborted so
        that no temp file or multipart upload outlives the process."""
        await self.tracker.abort_all()

    async def receive(
        self,
        *,
        user_id: uuid.UUID,
        filename: str,
        chunks: AsyncIterator[bytes],
        declared_size: int | None,
        process: Sequence[Operation] = (),
        preset: Sequence[RequestedJob] = (),
        ttl_seconds: int | None = None,
        max_bytes: int | None = None,
        allowed_types: Collection[str] = (),
        video_id: uuid.UUID | None = None,
        before_insert: BeforeInsert | None = None,
    ) -> StoredUpload:
        """Store one upload; with `process`, queue those operations in the same transaction.

        `ttl_seconds` (checked by `parse_ttl`) defaults to `video_ttl_seconds`.
        `max_bytes` lowers the size limit and `allowed_types` (sniffed content
        types, or `video/*`-style families) narrows the types, for a caller
        with its own constraints (a direct upload); `before_insert` runs first
        in the video's transaction."""
        ttl = self._settings.video_ttl_seconds if ttl_seconds is None else ttl_seconds
        limits = await self.limits(user_id)
        if max_bytes is not None and max_bytes < limits.max_bytes:
            limits = dataclasses.replace(limits, max_bytes=max_bytes)
        limits.check_declared(declared_size)
        try:
            head = await _read_head(chunks)
            sniffed = sniff(head)
            if sniffed is None:
                raise _unsupported()
            _check_type(sniffed, allowed_types)
            JobService.check_process_kind(process, sniffed.kind)
            if sniffed.kind == "image" and declared_size is not None:
                self._images.check_size(declared_size)
            JobService.check_process_kind([op for op, _ in preset], sniffed.kind, field="preset")
            video_id = video_id or uuid.uuid4()
            key = source_key(user_id, video_id)
            spool = await self._open_spool(key)
            try:
                size, sha256 = await self._stream_to_storage(
                    key, sniffed, head, chunks, limits, spool
                )
            except BaseException:
                await self._close_spool(spool)
                raise
        except (ConnectionResetError, HttpProcessingError) as exc:
            # The client went away or sent a broken body; the writer has been aborted.
            self._metrics.uploads.labels("aborted").inc()
            log.info("upload_aborted", reason=str(exc) or type(exc).__name__)
            raise ClientClosedRequest() from None
        except Exception:
            self._metrics.uploads.labels("rejected").inc()
            raise
        if declared_size is not None and size != declared_size:
            await self._close_spool(spool)
            await self._discard(key)
            raise BadRequest("The body ended before Content-Length bytes", code="incomplete_body")
        candidate = _candidate(video_id, user_id, filename, key, size, sha256, sniffed)
        try:
            return await self._accept(
                candidate,
                sniffed,
                process,
                ttl,
                preset=preset,
                before_insert=before_insert,
                local_copy=None if spool is None else Path(spool.name),
            )
        finally:
            await self._close_spool(spool)

    async def _open_spool(self, key: str) -> BinaryIO | None:
        """On a remote store, a local copy written as the bytes go up: the probe and
        the scan then read it instead of downloading the object again (which took
        as long as the upload itself, bench/s3_bench.py)."""
        if self._storage.sendfile_path(key) is not None:
            return None  # local disk: the object itself is the local copy
        root = data_dirs.s3_copies_dir(self._settings.data_dir)
        directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="upload-", dir=root)
        # Opened on the loop: an open() handed to a thread still runs if we are cancelled.
        return open(Path(directory) / "object", "wb")  # noqa: ASYNC230

    @staticmethod
    async def _close_spool(spool: BinaryIO | None) -> None:
        if spool is not None:
            spool.close()
            await asyncio.to_thread(shutil.rmtree, Path(spool.name).parent, ignore_errors=True)

    async def accept_stored(
        self,
        *,
        user_id: uuid.UUID,
        video_id: uuid.UUID,
        filename: str,
        key: str,
        size: int,
        sha256: str,
        process: Sequence[Operation] = (),
        preset: Sequence[RequestedJob] = (),
        ttl_seconds: int | None = None,
        conn: asyncpg.Connection | None = None,
        before_insert: BeforeInsert | None = None,
        keep_on_server_error: bool = False,
        allowed_types: Collection[str] = (),
    ) -> StoredUpload:
        """An object already in storage at `key` becomes a video, as a plain upload does:
        sniff (415), probe (422), then the row and the `process` jobs in one transaction,
        then `video.ready`. Any refusal deletes the object; so does any other failure
        unless `keep_on_server_error` (then the caller owns the object and retries).

        The transaction runs on `conn` when given (a caller holding a lock on it);
        `before_insert` runs first inside it, so the caller's own row changes commit
        with the video or not at all."""
        ttl = self._settings.video_ttl_seconds if ttl_seconds is None else ttl_seconds
        try:
            async with aclosing(self._storage.read(key, 0, SNIFF_BYTES - 1)) as chunks:
                sniffed = sniff(await _read_head(chunks))
            if sniffed is None:
                raise _unsupported()
            _check_type(sniffed, allowed_types)
            JobService.check_process_kind(process, sniffed.kind)
            JobService.check_process_kind([op for op, _ in preset], sniffed.kind, field="preset")
        except BaseException as exc:
            await self._after_failure(key, exc, keep_on_server_error)
            raise
        candidate = _candidate(video_id, user_id, filename, key, size, sha256, sniffed)
        return await self._accept(
            candidate,
            sniffed,
            process,
            ttl,
            preset=preset,
            conn=conn,
            before_insert=before_insert,
            keep_on_server_error=keep_on_server_error,
        )

    async def _accept(
        self,
        candidate: Video,
        sniffed: SniffResult,
        process: Sequence[Operation],
        ttl: int,
        *,
        preset: Sequence[RequestedJob] = (),
        conn: asyncpg.Connection | None = None,
        before_insert: BeforeInsert | None = None,
        keep_on_server_error: bool = False,
        local_copy: Path | None = None,
    ) -> StoredUpload:
        """Steps 3 and 4 for a stored object, then the events; a failure deletes it
        (see `_after_failure`)."""
        try:
            if sniffed.kind == "image":
                self._images.check_size(candidate.size)
            stored = await self._probe_and_record(
                candidate,
                sniffed,
                process,
                ttl,
                preset=preset,
                conn=conn,
                before_insert=before_insert,
                local_copy=local_copy,
            )
        except BaseException as exc:
            if sniffed.kind == "image":
                await self._images.discard_derived(candidate)
            await self._after_failure(candidate.storage_key, exc, keep_on_server_error)
            raise
        if stored.duplicate:
            # Same bytes as an image the user has: nothing of this upload is kept.
            await self._images.discard_derived(candidate)
            await self._discard(candidate.storage_key)
            self._metrics.uploads.labels("duplicate").inc()
            log.info("upload_duplicate_image", video_id=str(stored.video.id))
            return stored
        if stored.video.storage_key != candidate.storage_key:
            # The image is kept as its copy without EXIF; the upload as sent goes.
            await self._discard(candidate.storage_key)
        self._metrics.uploads.labels("stored").inc()
        self._metrics.bytes_uploaded.inc(candidate.size)
        video = stored.video
        log.info(
            "upload_stored",
            video_id=str(video.id),
            size=video.size,
            content_type=video.content_type,
        )
        self._publisher.video_ready(video)
        await self._jobs.announce_queued(stored.jobs)
        return stored

    async def _stream_to_storage(
        self,
        key: str,
        sniffed: SniffResult,
        head: bytes,
        chunks: AsyncIterator[bytes],
        limits: UploadLimits,
        spool: BinaryIO | None = None,
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        self._metrics.uploads_in_flight.inc()
        try:
            async with self._storage.writer(key, sniffed.content_type) as writer:
                self.tracker.add(writer)
                # Chunk N is hashed and written while chunk N+1 is read from the
                # socket: network and disk busy at once.
                stored = InFlight("upload_chunk_store")
                try:
                    pending: bytes | None = head
                    while pending is not None:
                        size += len(pending)
                        limits.check(size)
                        if sniffed.kind == "image":
                            self._images.check_size(size)
                        await stored.finish()
                        stored.start(_store_chunk(writer, digest, pending, spool))
                        pending = await anext(chunks, None)
                    await stored.finish()
                    if spool is not None:
                        await asyncio.to_thread(spool.flush)
                    await writer.commit()
                finally:
                    await stored.settle()
                    self.tracker.discard(writer)
        finally:
            self._metrics.uploads_in_flight.dec()
        return size, digest.hexdigest()

    async def _probe_and_record(
        self,
        candidate: Video,
        sniffed: SniffResult,
        process: Sequence[Operation],
        ttl_seconds: int,
        *,
        preset: Sequence[RequestedJob] = (),
        conn: asyncpg.Connection | None = None,
        before_insert: BeforeInsert | None = None,
        local_copy: Path | None = None,
    ) -> StoredUpload:
        if candidate.kind == "image":
            # The common duplicate costs no decoding and writes nothing; the check
            # in the insert's transaction below is the one that is race-safe.
            duplicate = await self._known_image(candidate, ttl_seconds, conn, before_insert)
            if duplicate is not None:
                return duplicate
        async with AsyncExitStack() as derived:
            try:
                async with _local_copy(self._storage, candidate.storage_key, local_copy) as path:
                    # The malware scan (a no-op unless enabled), then the bounded,
                    # sandboxed probe, both on the one local copy of the object. An
                    # image's limits are checked (Pillow, header only) before ffmpeg.
                    await self._scanner.require_clean(path)
                    image = None
                    if sniffed.kind == "image":
                        image = await derived.enter_async_context(
                            self._images.prepare(path, sniffed)
                        )
                    info = await self._prober.probe(path, sniffed.demuxer)
            except ProbeError as exc:
                raise Unprocessable(
                    f"The file cannot be decoded: {exc}", code="undecodable"
                ) from None
            except FfmpegTimeout:
                raise Unprocessable(
                    "Probing the file took too long", code="probe_timeout"
                ) from None
            candidate = dataclasses.replace(candidate, metadata=info.to_json())
            if image is not None:
                candidate = await self._images.store(candidate, sniffed, image)
        # Default params are checked against the probed metadata before anything
        # is kept: a 400 here still discards the object.
        planned = self._jobs.plan_defaults(process, candidate, preset)
        auto = self._plan_auto_thumbnail(candidate, planned)
        async with self._transaction(conn) as conn:
            if candidate.kind == "image":
                existing = await videos_db.find_image_by_sha256(
                    conn, candidate.user_id, candidate.sha256
                )
                if existing is not None:
                    return await self._duplicate(conn, existing, ttl_seconds, before_insert)
            try:
                # A savepoint: losing the race to an identical image rolls back
                # only this, and the transaction goes on to name the winner.
                async with conn.transaction():
                    return await self._insert(
                        conn, candidate, planned, ttl_seconds, before_insert, auto
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != videos_db.IMAGE_SHA256_INDEX:
                    raise
            existing = await videos_db.find_image_by_sha256(
                conn, candidate.user_id, candidate.sha256
            )
            if existing is None:  # the winner was deleted meanwhile: let the client retry
                raise _image_changed()
            return await self._duplicate(conn, existing, ttl_seconds, before_insert)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        candidate: Video,
        planned: list[PlannedJob],
        ttl_seconds: int,
        before_insert: BeforeInsert | None,
        auto: PlannedJob | None,
    ) -> StoredUpload:
        if before_insert is not None:
            await before_insert(conn, candidate.id)
        await QuotaLedger.charge_upload(conn, candidate.user_id, candidate.size)
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
        # Holds each job's estimated outputs: 413 (and nothing kept) when they
        # do not fit beside the upload itself.
        jobs = await self._jobs.queue_planned(conn, video, planned)
        if auto is not None:
            jobs += await self._queue_auto_thumbnail(conn, video, auto)
        return StoredUpload(video, jobs)

    async def _known_image(
        self,
        candidate: Video,
        ttl_seconds: int,
        conn: asyncpg.Connection | None,
        before_insert: BeforeInsert | None,
    ) -> StoredUpload | None:
        async with self._transaction(conn) as tx:
            existing = await videos_db.find_image_by_sha256(tx, candidate.user_id, candidate.sha256)
            if existing is None:
                return None
            return await self._duplicate(tx, existing, ttl_seconds, before_insert)

    @staticmethod
    async def _duplicate(
        conn: asyncpg.Connection,
        existing: Video,
        ttl_seconds: int,
        before_insert: BeforeInsert | None,
    ) -> StoredUpload:
        """The upload is an image the user has: the caller's row changes still
        commit (naming it), nothing is charged and no job is queued. Uploading it
        again keeps it at least as long as this upload asked."""
        renewed = await videos_db.renew_expiry(conn, existing.id, ttl_seconds)
        if renewed is None:
            raise _image_changed()
        if before_insert is not None:
            await before_insert(conn, renewed.id)
        return StoredUpload(renewed, [], duplicate=True)

    def _plan_auto_thumbnail(
        self, video: Video, planned: Sequence[PlannedJob]
    ) -> PlannedJob | None:
        """The upload's automatic `thumbnail` job (for the page's grid), unless it is
        turned off, asked for already, or cannot apply."""
        if not self._settings.thumbnail_after_upload or video.kind == "image":
            return None  # an image gets its thumbnail at upload (ImageIntake)
        if any(job.operation.name == AUTO_THUMBNAIL for job in planned):
            return None
        try:
            operation = self._jobs.resolve_operation(AUTO_THUMBNAIL, video)
            return self._jobs.plan(operation, {}, video)
        except BadRequest:
            return None  # not in this registry, or not for this file: no thumbnail

    async def _queue_auto_thumbnail(
        self, conn: asyncpg.Connection, video: Video, auto: PlannedJob
    ) -> list[Job]:
        try:
            async with conn.transaction():  # a savepoint: the upload stays if this fails
                return await self._jobs.queue_planned(conn, video, [auto])
        except PayloadTooLarge:
            log.info("auto_thumbnail_skipped", video_id=str(video.id), reason="quota")
            return []

    def _transaction(
        self, conn: asyncpg.Connection | None
    ) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return _transaction_on(conn) if conn is not None else _pooled_transaction(self._pool)

    async def _after_failure(
        self, key: str, exc: BaseException, keep_on_server_error: bool
    ) -> None:
        if keep_on_server_error and not refused_by_client(exc):
            self._metrics.uploads.labels("retry").inc()
            log.warning("upload_kept_after_server_error", key=key, error=type(exc).__name__)
            return
        await self._discard(key)
        self._metrics.uploads.labels("rejected").inc()

    async def _discard(self, key: str) -> None:
        # Shielded: runs on the way out of a cancelled request too.
        try:
            await asyncio.shield(self._storage.delete(key))
        except Exception:
            log.exception("orphan_object_delete_failed", key=key)


@asynccontextmanager
async def _pooled_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def _transaction_on(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    async with conn.transaction():
        yield conn


@asynccontextmanager
async def _local_copy(storage: Storage, key: str, spooled: Path | None) -> AsyncIterator[Path]:
    """The bytes just uploaded, spooled as they went up, or else the object's local path."""
    if spooled is not None:
        yield spooled
        return
    async with storage.local_path(key) as path:
        yield path


async def _store_chunk(
    writer: ObjectWriter, digest: hashlib._Hash, chunk: bytes, spool: BinaryIO | None
) -> None:
    """Store one chunk: hashed in a worker thread while the writer writes it
    (SHA-256 and file writes both release the GIL, so they use both cores)."""
    steps: list[Awaitable[object]] = [asyncio.to_thread(digest.update, chunk), writer.write(chunk)]
    if spool is not None:
        steps.append(asyncio.to_thread(spool.write, chunk))
    await together(*steps)
