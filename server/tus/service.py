"""`TusService`: resumable uploads (tus 1.0) that end the way a plain upload does.

An upload is a `tus_uploads` row plus an appendable object in storage
(`Storage.start_append`: a temp file on local disk, a multipart upload and a
tail object on S3). The row records the `AppendState` — where every stored
byte is — and the offset is always that state's size. Order of one PATCH:

1. take the upload's advisory lock on a pooled connection for the whole
   request (a second PATCH, a DELETE or the sweep gets 423 instead of
   interleaving bytes); check status, expiry and `Upload-Offset` (409);
2. stream the body into `Storage.open_append`; each durable state the
   backend hands back (local: after fsync every `tus_checkpoint_bytes`; S3:
   after each part) is recorded at once — unless the request carries
   `Upload-Checksum`, which makes the request all or nothing;
3. at the end of the body (or where it broke off, without a checksum) `sync`
   and record; a checksum mismatch records nothing (460);
4. with the last byte, the same UPDATE moves the upload to `completing`;
   then the object is finished (rename / CompleteMultipartUpload) and handed
   to `UploadService.accept_stored` — sniff, probe, the video row and its jobs
   in one transaction that also moves the upload to `completed` and turns
   its quota hold into the video's charge — and `video.ready`.

Crash points (SIGKILL at any moment; PostgreSQL drops the dead connection's
advisory lock at once, so the next request can go on):

- between a write and its record: the bytes past the recorded size are
  dropped by the next open (local truncates to it; S3 uploads the part again
  under the same number, and the new tail object is never referenced — the
  scratch prefix is deleted when the upload ends), so HEAD's offset never
  counts a byte that is not stored;
- between a record and deleting the superseded tail object: a stray object
  under the scratch prefix, deleted with it;
- in `completing`, before the video's transaction commits: HEAD or PATCH
  runs the completion again — finishing is idempotent (the temp file is
  already renamed; S3 answers NoSuchUpload and the object is there), the
  video id and key were fixed at creation, and the status guard lets only
  one completion commit;
- after that commit but before the temp bytes are removed: the upload is
  `completed` with `cleaned_at` unset, and the sweep removes them;
- the running SHA-256 lives in this process only: after a restart (or a
  PATCH served by another instance) it is computed once from storage at the
  end.

Expiry is fixed at creation (`tus_upload_ttl_seconds`, never above
`stale_upload_seconds`, so the generic stale-upload sweep never aborts a
live upload's multipart upload); the cleanup sweep expires unfinished
uploads (`sweep`), gives their quota back and removes their bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from aiohttp.http_exceptions import HttpProcessingError

from config.settings import Settings
from server.db import tus as tus_db
from server.errors import (
    BadRequest,
    ChecksumMismatch,
    ClientClosedRequest,
    Conflict,
    Forbidden,
    Gone,
    HTTPError,
    LengthRequired,
    Locked,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
)
from server.inflight import InFlight, together
from server.logs import get_logger
from server.object_keys import source_key, tus_scratch_prefix
from server.quota.ledger import QuotaLedger
from server.storage.base import Appender, AppendState, ObjectNotFound, Storage
from server.tus import state
from server.tus.hashes import RunningHashes
from server.tus.headers import Checksum, no_chunks
from server.tus.model import COMPLETED, COMPLETING, FAILED, TERMINATED, UPLOADING, TusUpload
from server.uploads.service import UploadService, refused_by_client

log = get_logger("frameflow.tus")

# A PATCH right after a dropped one waits this long for the old request to let go.
PATCH_LOCK_WAIT = 2.0
DELETE_LOCK_WAIT = 5.0
# Finished rows answer HEAD (410, or the video) for this long past their expiry.
KEEP_FINISHED_SECONDS = 7 * 24 * 3600
SWEEP_BATCH = 500
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Created:
    upload: TusUpload
    # A refusal of the bytes sent with the creation (creation-with-upload): the
    # upload exists all the same, and its URL goes out with the error.
    body_error: HTTPError | None = None


@dataclass
class TusSweepReport:
    expired: int = 0
    cleaned: int = 0
    purged: int = 0


def _error_record(exc: HTTPError) -> dict[str, Any]:
    return {"status": exc.status, "code": exc.error_code, "message": exc.message}


class TusService:
    def __init__(
        self, *, pool: asyncpg.Pool, storage: Storage, settings: Settings, uploads: UploadService
    ) -> None:
        self._pool = pool
        self._storage = storage
        self._settings = settings
        self._uploads = uploads
        self._hashes = RunningHashes()

    @property
    def max_size(self) -> int:
        return self._settings.max_upload_bytes

    # --- creation ------------------------------------------------------------------

    async def create(
        self,
        user_id: uuid.UUID,
        *,
        length: int | None,
        metadata: dict[str, str],
        filename: str,
        body: AsyncIterator[bytes] | None = None,
        content_length: int | None = None,
        checksum: Checksum | None = None,
    ) -> Created:
        """A new upload (`length` None: deferred), holding `length` bytes of the quota;
        with `body`, its first bytes too (creation-with-upload)."""
        if length is not None and length > self.max_size:
            raise PayloadTooLarge(
                f"Uploads are limited to {self.max_size} bytes", limit=self.max_size
            )
        # The plain upload's options, refused before anything exists.
        process = self._uploads.parse_process(metadata.get("process"))
        # Checked now; read again at completion (the metadata keeps the name).
        await self._uploads.parse_preset(user_id, metadata.get("preset"))
        ttl = self._uploads.parse_ttl(metadata.get("ttl"))
        upload_id, video_id = uuid.uuid4(), uuid.uuid4()
        storage = await self._storage.start_append(
            source_key(user_id, video_id),
            "application/octet-stream",
            tus_scratch_prefix(upload_id),
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                cap = self._settings.tus_max_unfinished_uploads
                if await tus_db.count_unfinished_locked(conn, user_id) >= cap:
                    raise Forbidden(
                        f"You have {cap} unfinished uploads; finish or delete one first",
                        code="too_many_unfinished_uploads",
                        limit=cap,
                    )
                upload = await tus_db.insert_upload(
                    conn,
                    id=upload_id,
                    user_id=user_id,
                    video_id=video_id,
                    upload_length=length,
                    filename=filename,
                    metadata=metadata,
                    process=[op.name for op in process],
                    ttl_seconds=ttl,
                    storage=storage,
                    expires_in_seconds=self._settings.tus_upload_ttl_seconds,
                )
                if length:
                    await QuotaLedger.hold_for_tus(conn, user_id, upload_id, length)
        except BaseException:
            await self._discard_storage(storage)
            raise
        log.info("tus_created", upload_id=str(upload.id), length=length)
        if body is None and length != 0:
            return Created(upload)
        try:
            upload = await self.append(
                user_id,
                upload.id,
                offset=0,
                chunks=body if body is not None else no_chunks(),
                content_length=content_length,
                checksum=checksum,
            )
        except HTTPError as exc:
            return Created(upload, body_error=exc)
        return Created(upload)

    # --- reading -------------------------------------------------------------------

    async def status(
        self, user_id: uuid.UUID, upload_id: uuid.UUID, *, allowed_types: Collection[str] = ()
    ) -> TusUpload:
        """HEAD: the upload as stored. One left `completing` by a crash is completed now
        (unless another request holds it). `allowed_types` narrows what the finished
        file may be (a direct upload's constraint; 415 `type_not_allowed`)."""
        async with self._pool.acquire() as conn:
            upload = self._usable(await tus_db.get_upload(conn, upload_id, user_id))
        if upload.status != COMPLETING:
            return upload
        async with self._locked(upload_id, wait=0.0, busy_ok=True) as conn:
            if conn is None:
                return upload
            upload = self._usable(await tus_db.get_upload(conn, upload_id, user_id))
            if upload.status == COMPLETING:
                upload = await self._complete(conn, upload, allowed_types)
            return upload

    # --- appending -----------------------------------------------------------------

    async def append(
        self,
        user_id: uuid.UUID,
        upload_id: uuid.UUID,
        *,
        offset: int,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
        checksum: Checksum | None = None,
        length: int | None = None,
        allowed_types: Collection[str] = (),
    ) -> TusUpload:
        """PATCH: append the body at `offset` (409 unless it is the upload's offset);
        `length` declares a deferred length. The last byte completes the upload."""
        async with self._locked(upload_id, wait=PATCH_LOCK_WAIT) as conn:
            assert conn is not None
            upload = self._usable(await tus_db.get_upload(conn, upload_id, user_id))
            if upload.status != UPLOADING:
                if offset != upload.upload_offset or content_length:
                    raise self._offset_conflict(upload, "This upload has all its bytes")
                # A repeated last PATCH, or one that found a completion to finish.
                if upload.status == COMPLETING:
                    upload = await self._complete(conn, upload, allowed_types)
                return upload
            if offset != upload.upload_offset:
                raise self._offset_conflict(
                    upload, f"Upload-Offset is {offset}; the upload is at {upload.upload_offset}"
                )
            if length is not None:
                upload = await self._declare_length(conn, upload, length)
            limit = await self._body_limit(conn, upload, content_length)
            upload = await self._write(conn, upload, chunks, checksum, limit)
            if upload.status == COMPLETING:
                upload = await self._complete(conn, upload, allowed_types)
            return upload

    async def _declare_length(
        self, conn: asyncpg.Connection, upload: TusUpload, length: int
    ) -> TusUpload:
        if upload.upload_length is not None:
            if length == upload.upload_length:
                return upload
            raise BadRequest(
                "Upload-Length cannot change once declared",
                code="invalid_header",
                header="Upload-Length",
            )
        if length < upload.upload_offset:
            raise BadRequest(
                "Upload-Length is below the bytes already stored",
                code="invalid_header",
                header="Upload-Length",
            )
        if length > self.max_size:
            raise PayloadTooLarge(
                f"Uploads are limited to {self.max_size} bytes", limit=self.max_size
            )
        async with conn.transaction():
            await QuotaLedger.hold_for_tus(conn, upload.user_id, upload.id, length)
            return await tus_db.set_length(conn, upload.id, length)

    async def _body_limit(
        self, conn: asyncpg.Connection, upload: TusUpload, content_length: int | None
    ) -> int:
        """The most bytes this PATCH may carry (413 up front when it says it has more).
        A deferred upload holds quota for what each PATCH announces."""
        if upload.upload_length is not None:
            limit = upload.upload_length - upload.upload_offset
        else:
            if content_length is None:
                raise LengthRequired("A PATCH to an upload of deferred length needs Content-Length")
            limit = self.max_size - upload.upload_offset
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(
                f"The body is {content_length} bytes, but only {limit} more fit this upload",
                limit=limit,
            )
        if upload.upload_length is None and content_length:
            total = max(upload.reserved_bytes, upload.upload_offset + content_length)
            async with conn.transaction():
                await QuotaLedger.hold_for_tus(conn, upload.user_id, upload.id, total)
        return limit

    async def _write(
        self,
        conn: asyncpg.Connection,
        upload: TusUpload,
        chunks: AsyncIterator[bytes],
        checksum: Checksum | None,
        limit: int,
    ) -> TusUpload:
        running = self._hashes.take(upload.id, upload.upload_offset)
        # Put back if this request ends up keeping nothing (a checksum mismatch).
        before = running.copy() if running is not None else None
        check = checksum.hasher() if checksum is not None else None
        recorded = upload.storage
        received = 0
        hashed = upload.upload_offset  # bytes the running hash covers
        hash_known = True  # False while a chunk's hashing may or may not have happened
        # Chunk N is written (and hashed, in a worker thread) while chunk N+1 is read
        # from the socket, as a plain upload's are: two chunks in memory. A write
        # that made a checkpoint records it at once, not when the next chunk comes.
        store = InFlight("tus_chunk_store")
        store_bytes = 0

        async def store_chunk(appender: Appender, chunk: bytes) -> None:
            nonlocal upload, recorded
            durable = await _append_chunk(appender, running, chunk)
            if durable is not None and check is None:
                upload, recorded = await self._record(conn, upload, recorded, durable)

        try:
            async with self._storage.open_append(
                recorded, checkpoint_bytes=self._settings.tus_checkpoint_bytes
            ) as appender:
                try:
                    async for chunk in chunks:
                        received += len(chunk)
                        if received > limit:
                            raise PayloadTooLarge(
                                f"The body carries more than the {limit} bytes this upload has "
                                "left",
                                limit=limit,
                            )
                        if check is not None:
                            check.update(chunk)
                        if store.pending:
                            await store.finish()
                            hashed += store_bytes
                            hash_known = True
                        # Cut short (cancelled), the hash may or may not have happened,
                        # and it must not guess.
                        hash_known = running is None
                        store_bytes = len(chunk)
                        store.start(store_chunk(appender, chunk))
                    if store.pending:
                        await store.finish()
                        hashed += store_bytes
                        hash_known = True
                except (
                    ConnectionResetError,
                    HttpProcessingError,
                    PayloadTooLarge,
                    RequestTimeout,
                    BadRequest,
                    asyncio.CancelledError,
                ) as exc:
                    # The body broke off (or the request was cancelled: a server that
                    # cancels handlers of lost connections, a shutdown): keep what
                    # arrived, unless a checksum had to cover it — then none of it counts.
                    if store.pending and await store.settle():
                        hashed += store_bytes
                        hash_known = True
                    if check is None:
                        # Every byte may be in (the break came while the last chunk was
                        # being stored): then it is recorded as complete, and the next
                        # HEAD or PATCH finishes it, as after a crash while completing.
                        final = (
                            upload.upload_length is not None
                            and appender.size == upload.upload_length
                        )
                        durable = await appender.sync(final=final)
                        upload, recorded = await self._record(
                            conn, upload, recorded, durable, final=final
                        )
                        if hash_known and hashed == durable.size:  # else: hashed at the end
                            self._hashes.put(upload.id, durable.size, running)
                    log.info("tus_patch_interrupted", upload_id=str(upload.id), kept=check is None)
                    if isinstance(
                        exc, PayloadTooLarge | RequestTimeout | BadRequest | asyncio.CancelledError
                    ):
                        raise
                    raise ClientClosedRequest() from None
                finally:
                    # Any other way out (a storage error, a conflict): the chunk in
                    # flight ends before the appender closes under it.
                    await store.settle()
                if checksum is not None and check is not None and check.digest() != checksum.digest:
                    self._hashes.put(upload.id, upload.upload_offset, before)
                    raise ChecksumMismatch(
                        f"The body's {checksum.algorithm} does not match Upload-Checksum; "
                        "nothing of it was kept"
                    )
                final = upload.upload_length is not None and appender.size == upload.upload_length
                durable = await appender.sync(final=final)
                upload, recorded = await self._record(conn, upload, recorded, durable, final=final)
                self._hashes.put(upload.id, durable.size, running)
        except ObjectNotFound:
            raise Gone(
                "This upload's bytes are gone; start a new upload", code="upload_gone"
            ) from None
        return upload

    async def _record(
        self,
        conn: asyncpg.Connection,
        upload: TusUpload,
        old: AppendState,
        new: AppendState,
        *,
        final: bool = False,
    ) -> tuple[TusUpload, AppendState]:
        """Record a durable state (the new offset), then drop what only the old one used."""
        if new == old and not final:
            return upload, old  # a checkpoint that ended the body exactly: nothing new
        if final:
            updated = await state.start_completing(conn, upload, new)
        else:
            updated = await tus_db.record_progress(conn, upload.id, upload.upload_offset, new)
        if updated is None:  # cannot happen under the lock; never write on regardless
            raise Conflict("The upload changed under this request", code="upload_changed")
        try:
            await self._storage.release_superseded(old, new)
        except Exception:
            log.exception("tus_release_failed", upload_id=str(upload.id))
        return updated, new

    # --- completion ----------------------------------------------------------------

    async def _complete(
        self, conn: asyncpg.Connection, upload: TusUpload, allowed_types: Collection[str] = ()
    ) -> TusUpload:
        """completing → completed through `UploadService.accept_stored` (or failed, when
        it refuses the file). Runs under the upload's lock; safe to repeat."""
        try:
            info = await self._storage.finish_append(upload.storage)
        except ObjectNotFound:
            error = Gone("This upload's bytes were lost; upload the file again", code="upload_lost")
            await self._fail(conn, upload, error)
            raise error from None
        sha256 = await self._sha256(upload, info.size)
        operations = self._uploads.parse_process(",".join(upload.process))
        try:
            preset = await self._uploads.parse_preset(upload.user_id, upload.metadata.get("preset"))
        except HTTPError as exc:  # deleted since the upload began: refused like a bad file
            await self._fail(conn, upload, exc)
            raise

        async def mark_completed(tx: asyncpg.Connection, video_id: uuid.UUID) -> None:
            if await state.complete(tx, upload, video_id) is None:
                raise Conflict("The upload changed under this request", code="upload_changed")

        try:
            stored = await self._uploads.accept_stored(
                user_id=upload.user_id,
                video_id=upload.video_id,
                filename=upload.filename,
                key=upload.storage.key,
                size=info.size,
                sha256=sha256,
                process=operations,
                preset=preset,
                ttl_seconds=upload.ttl_seconds,
                conn=conn,
                before_insert=mark_completed,
                # Every byte is in: a server failure (the database down) must not
                # cost the object, or the retry would find it gone (410 upload_lost).
                keep_on_server_error=True,
                allowed_types=allowed_types,
            )
        except HTTPError as exc:
            if not refused_by_client(exc):
                raise  # left completing: the next HEAD or PATCH tries again
            await self._fail(conn, upload, exc)
            raise
        log.info("tus_completed", upload_id=str(upload.id), video_id=str(stored.video.id))
        done = await tus_db.get_upload(conn, upload.id, None)
        assert done is not None and done.status == COMPLETED
        return await self._clean(conn, done)

    async def _sha256(self, upload: TusUpload, size: int) -> str:
        running = self._hashes.take(upload.id, size)
        if running is not None:
            return str(running.hexdigest())
        digest = hashlib.sha256()
        async with aclosing(self._storage.read(upload.storage.key, chunk_size=_HASH_CHUNK)) as body:
            async for chunk in body:
                digest.update(chunk)
        log.info("tus_hashed_from_storage", upload_id=str(upload.id), size=size)
        return digest.hexdigest()

    async def _fail(self, conn: asyncpg.Connection, upload: TusUpload, exc: HTTPError) -> None:
        failed = await state.fail(conn, upload, _error_record(exc))
        log.info("tus_refused", upload_id=str(upload.id), code=exc.error_code)
        if failed is not None:
            await self._clean(conn, failed)

    # --- ending --------------------------------------------------------------------

    async def terminate(self, user_id: uuid.UUID, upload_id: uuid.UUID) -> None:
        """DELETE: an unfinished upload is ended, its hold given back, its bytes removed."""
        async with self._locked(upload_id, wait=DELETE_LOCK_WAIT) as conn:
            assert conn is not None
            upload = self._usable(await tus_db.get_upload(conn, upload_id, user_id))
            if not upload.unfinished:
                raise Conflict(f"The upload is {upload.status}", code="upload_finished")
            ended = await state.terminate(conn, upload)
            if ended is None:
                raise Conflict("The upload changed under this request", code="upload_changed")
            log.info("tus_terminated", upload_id=str(upload.id))
            await self._clean(conn, ended)

    async def sweep(self, *, dry_run: bool = False) -> TusSweepReport:
        """The cleanup sweep's step: expire unfinished uploads past their expiry (quota
        back, bytes removed), retry cleanups that failed, forget old finished rows."""
        report = TusSweepReport()
        async with self._pool.acquire() as conn:
            due = await tus_db.expired_unfinished(conn, SWEEP_BATCH)
            unclean = await tus_db.finished_not_cleaned(conn, SWEEP_BATCH)
        if dry_run:
            report.expired, report.cleaned = len(due), len(unclean)
            return report
        for upload in due:
            # Skipped while a request holds it; the next sweep comes back.
            async with self._locked(upload.id, wait=0.0, busy_ok=True) as conn:
                if conn is None:
                    continue
                current = await tus_db.get_upload(conn, upload.id, None)
                if current is None or not current.unfinished:
                    continue
                expired = await state.expire(conn, current)
                if expired is not None:
                    report.expired += 1
                    self._hashes.forget(upload.id)
                    log.info("tus_expired", upload_id=str(upload.id))
                    await self._clean(conn, expired)
        for upload in unclean:
            async with self._pool.acquire() as conn:
                cleaned = await self._clean(conn, upload)
            report.cleaned += cleaned.cleaned_at is not None
        async with self._pool.acquire() as conn:
            report.purged = await tus_db.purge_finished(conn, KEEP_FINISHED_SECONDS)
        return report

    async def _clean(self, conn: asyncpg.Connection, upload: TusUpload) -> TusUpload:
        """Remove a finished upload's temporary bytes — and, unless it became a video, the
        object a completion cut short may have made; on failure the sweep tries again."""
        try:
            await self._storage.discard_append(upload.storage)
            if upload.status != COMPLETED:
                await self._storage.delete(upload.storage.key)
        except Exception:
            log.exception("tus_cleanup_failed", upload_id=str(upload.id))
            return upload
        await tus_db.mark_cleaned(conn, upload.id)
        return await tus_db.get_upload(conn, upload.id, None) or upload

    async def _discard_storage(self, storage: AppendState) -> None:
        try:
            await asyncio.shield(self._storage.discard_append(storage))
        except Exception:
            log.exception("tus_discard_failed", key=storage.key)

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _usable(upload: TusUpload | None) -> TusUpload:
        """404 (also for another user's), 410 once expired, or a failed upload's refusal."""
        if upload is None or upload.status == TERMINATED:
            raise NotFound("No such upload", code="upload_not_found")
        if upload.expired:
            raise Gone("This upload has expired; start a new one", code="upload_expired")
        if upload.status == FAILED:
            error = upload.error or {}
            raise Gone(
                f"This upload was refused: {error.get('message', 'unknown reason')}",
                code=str(error.get("code", "upload_failed")),
                refused_status=error.get("status"),
            )
        return upload

    @staticmethod
    def _offset_conflict(upload: TusUpload, message: str) -> Conflict:
        return Conflict(
            message,
            code="offset_mismatch",
            headers={"Upload-Offset": str(upload.upload_offset)},
            offset=upload.upload_offset,
        )

    @asynccontextmanager
    async def _locked(
        self, upload_id: uuid.UUID, *, wait: float, busy_ok: bool = False
    ) -> AsyncIterator[asyncpg.Connection | None]:
        """A pooled connection holding the upload's advisory lock; 423 when another
        request holds it past `wait` seconds (None instead, with `busy_ok`)."""
        async with self._pool.acquire() as conn:
            deadline = time.monotonic() + wait
            while not await tus_db.try_lock(conn, upload_id):
                if time.monotonic() >= deadline:
                    if busy_ok:
                        yield None
                        return
                    raise Locked(
                        "Another request is writing to this upload; try again shortly",
                        code="upload_locked",
                    )
                await asyncio.sleep(0.05)
            try:
                yield conn
            finally:
                await tus_db.unlock(conn, upload_id)


async def _append_chunk(appender: Appender, running: Any, chunk: bytes) -> AppendState | None:
    """Append one chunk, hashing it in a worker thread meanwhile (both let go of the GIL)."""
    if running is None:
        return await appender.write(chunk)
    _, durable = await together(asyncio.to_thread(running.update, chunk), appender.write(chunk))
    return cast(AppendState | None, durable)
