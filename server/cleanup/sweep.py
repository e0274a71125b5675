"""One cleanup pass: expired videos, unfinished deletes, orphans, stale uploads, scratch files.

Safety rules, in the order the pass applies them:

- One instance at a time: the pass runs under a session-level PostgreSQL
  advisory lock taken with `pg_try_advisory_lock`; an instance that does not
  get it reports `skipped` and leaves the work to the holder.
- Never delete what a job uses: a video with a queued or running job is kept
  until its jobs end (see `videos_db.lock_expired_unused_video` for why no
  job can slip in between the check and the delete).
- Row first, bytes second: expired videos go through the same deletion path
  as a user's DELETE (`VideoService`), which records the prefix in
  `pending_deletions`; the next pass deletes every recorded prefix again.
- Objects that no row references at all are found by listing storage
  (`orphans.py`), and only once older than any upload in flight can be.
- Dry run reads only: it lists what a real pass would remove.
- Direct-upload URLs that can no longer be used (waiting past expiry, or
  canceled) are forgotten a week after they expired: until then their creator
  still reads them as `expired`/`canceled`.
- Unfinished resumable (tus) uploads past their expiry are ended through
  `TusService` (quota back, temp file / multipart upload / tail objects
  removed), skipping any that a request holds at that moment.
- Audit rows older than FRAMEFLOW_AUDIT_RETENTION_DAYS go through
  `AuditLog.delete_expired`, the one delete the table's trigger allows.
- Verification and reset tokens (`account_tokens`) are forgotten a week after
  they expired: until then their link still answers `token_expired` (ask for a
  new one) rather than `token_invalid`. Refresh tokens go once expired: their
  JWT `exp` already refuses them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from config.settings import Settings
from server import scratch
from server.audit.service import AuditLog
from server.cleanup.orphans import sweep_orphans
from server.db import account_tokens as account_tokens_db
from server.db import direct_uploads as direct_uploads_db
from server.db import refresh_tokens as refresh_tokens_db
from server.db import videos as videos_db
from server.db import workers as workers_db
from server.logs import get_logger
from server.storage.base import Storage
from server.tus.service import TusService
from server.videos.model import Video
from server.videos.service import VideoService

log = get_logger("frameflow.cleanup")

# Any fixed 64-bit number shared by every instance; differs from the migration lock.
CLEANUP_LOCK_ID = 0x46_66_43_6C_65_61_6E_31  # "FfClean1"
BATCH_SIZE = 100
# How long a dead direct-upload URL stays readable to its creator after it expired.
DEAD_DIRECT_UPLOAD_GRACE = timedelta(days=7)
# How long an expired verification or reset link still says "expired".
EXPIRED_ACCOUNT_TOKEN_GRACE = timedelta(days=7)
DEAD_WORKER_SECONDS = 24 * 3600.0


@dataclass
class CleanupReport:
    dry_run: bool
    skipped: bool = False  # another instance holds the lock
    videos_deleted: int = 0
    bytes_freed: int = 0
    # None in a dry run: storage can only count stale uploads by aborting them.
    uploads_aborted: int | None = 0
    temp_files_removed: int = 0
    # Prefixes of already-deleted videos whose objects were deleted (again).
    pending_prefixes_removed: int = 0
    # Objects under videos/ that no row referenced (see orphans.py).
    orphans_removed: int = 0
    orphan_bytes_freed: int = 0
    # Resumable uploads expired by this pass, and finished ones whose bytes it removed.
    tus_uploads_expired: int = 0
    tus_uploads_cleaned: int = 0
    # Direct-upload URLs past use and past DEAD_DIRECT_UPLOAD_GRACE (rows only).
    direct_uploads_removed: int = 0
    # Audit log rows past the retention (not counted in a dry run).
    audit_rows_deleted: int = 0
    # Verification and reset tokens past EXPIRED_ACCOUNT_TOKEN_GRACE; expired
    # refresh tokens (not counted in a dry run).
    account_tokens_deleted: int = 0
    refresh_tokens_deleted: int = 0
    video_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_sweep(
    pool: asyncpg.Pool,
    videos: VideoService,
    storage: Storage,
    settings: Settings,
    *,
    dry_run: bool = False,
    stale_after: timedelta | None = None,
    orphans_after: timedelta | None = None,
    tus: TusService | None = None,
    audit: AuditLog | None = None,
) -> CleanupReport:
    """One pass; `stale_after` overrides `stale_upload_seconds`, `orphans_after` the
    age at which unreferenced objects go (tests, the CLI); without `tus`, resumable
    uploads are left alone."""
    report = CleanupReport(dry_run=dry_run, uploads_aborted=None if dry_run else 0)
    stale = (
        stale_after if stale_after is not None else timedelta(seconds=settings.stale_upload_seconds)
    )
    async with pool.acquire() as conn:
        # A dry run changes nothing, so it needs no lock and never waits for one.
        if not dry_run and not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1)", CLEANUP_LOCK_ID
        ):
            report.skipped = True
            return report
        try:
            sweep = _Sweep(conn, videos, storage, settings, report)
            await sweep.step("expired_videos", sweep.expired_videos)
            await sweep.step("pending_deletions", sweep.pending_deletions)
            await sweep.step("orphans", lambda: sweep.orphans(orphans_after))
            if tus is not None:
                await sweep.step("tus_uploads", lambda: sweep.tus_uploads(tus))
            await sweep.step("direct_uploads", sweep.direct_uploads)
            if audit is not None:
                await sweep.step("audit_retention", lambda: sweep.audit_retention(audit))
            await sweep.step("account_tokens", sweep.expired_tokens)
            await sweep.step("workers", sweep.forget_dead_workers)
            await sweep.step("stale_uploads", lambda: sweep.stale_uploads(stale))
            await sweep.step("scratch", lambda: sweep.scratch(stale))
        finally:
            if not dry_run:
                # Also released if this fails: the pool resets (or closes) the
                # connection, and both drop session advisory locks.
                await conn.execute("SELECT pg_advisory_unlock($1)", CLEANUP_LOCK_ID)
    return report


class _Sweep:
    def __init__(
        self,
        conn: asyncpg.Connection,
        videos: VideoService,
        storage: Storage,
        settings: Settings,
        report: CleanupReport,
    ) -> None:
        self.conn = conn  # holds the advisory lock; the deletes use their own
        self.videos = videos
        self.storage = storage
        self.settings = settings
        self.report = report
        self.dry_run = report.dry_run

    async def step(self, name: str, action: Callable[[], Any]) -> None:
        """Run one step; a failure is logged and reported, and the next step still runs."""
        try:
            await action()
        except Exception as exc:
            log.exception("cleanup_step_failed", step=name)
            self.report.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    async def expired_videos(self) -> None:
        now: datetime = await self.conn.fetchval("SELECT now()")  # the database's clock
        after: tuple[datetime, Any] | None = None
        while batch := await videos_db.expired_videos(self.conn, now, BATCH_SIZE, after):
            last = batch[-1]
            assert last.expires_at is not None  # always set on stored rows
            after = (last.expires_at, last.id)
            for video in batch:
                if self.dry_run:
                    self._count(video, await self.videos.bytes_freed_by(video))
                    continue
                deleted = await self.videos.delete_if_expired(video.id, now)
                if deleted is None:
                    continue  # a job arrived, or it is gone already: not ours to count
                self._count(deleted.video, deleted.bytes_freed)
                if not deleted.objects_deleted:
                    # The pending_deletions record stays: the next pass tries again.
                    self.report.errors.append(f"delete objects of video {video.id}")

    def _count(self, video: Video, bytes_freed: int) -> None:
        self.report.videos_deleted += 1
        self.report.bytes_freed += bytes_freed
        self.report.video_ids.append(str(video.id))

    async def pending_deletions(self) -> None:
        """Prefixes whose row is gone but whose delete did not finish (crash, storage error),
        including those of videos their owners deleted."""
        now: datetime = await self.conn.fetchval("SELECT now()")
        for prefix in await self.videos.pending_prefixes(now, limit=10_000):
            if self.dry_run:
                self.report.pending_prefixes_removed += 1
                continue
            try:
                await self.videos.delete_pending_prefix(prefix)
            except Exception as exc:
                # The pending_deletions row stays: the next pass tries again.
                log.exception("cleanup_delete_prefix_failed", prefix=prefix)
                self.report.errors.append(f"delete {prefix}: {type(exc).__name__}: {exc}")
                continue
            self.report.pending_prefixes_removed += 1

    async def orphans(self, older_than: timedelta | None) -> None:
        if older_than is None:
            older_than = timedelta(
                seconds=self.settings.stale_upload_seconds + self.settings.orphan_grace_seconds
            )
        found = await sweep_orphans(
            self.conn, self.storage, older_than=older_than, dry_run=self.dry_run
        )
        self.report.orphans_removed += found.objects
        self.report.orphan_bytes_freed += found.bytes

    async def tus_uploads(self, tus: TusService) -> None:
        swept = await tus.sweep(dry_run=self.dry_run)
        self.report.tus_uploads_expired += swept.expired
        self.report.tus_uploads_cleaned += swept.cleaned

    async def direct_uploads(self) -> None:
        now: datetime = await self.conn.fetchval("SELECT now()")
        before = now - DEAD_DIRECT_UPLOAD_GRACE
        if self.dry_run:
            self.report.direct_uploads_removed += await direct_uploads_db.count_dead(
                self.conn, before
            )
            return
        self.report.direct_uploads_removed += await direct_uploads_db.delete_dead(self.conn, before)

    async def audit_retention(self, audit: AuditLog) -> None:
        if self.dry_run:
            return
        now: datetime = await self.conn.fetchval("SELECT now()")
        self.report.audit_rows_deleted += await audit.delete_expired(
            now, self.settings.audit_retention_days
        )

    async def expired_tokens(self) -> None:
        now: datetime = await self.conn.fetchval("SELECT now()")
        before = now - EXPIRED_ACCOUNT_TOKEN_GRACE
        if self.dry_run:
            found = await account_tokens_db.count_expired(self.conn, before)
            self.report.account_tokens_deleted += found
            return
        deleted = await account_tokens_db.delete_expired(self.conn, before)
        self.report.account_tokens_deleted += deleted
        self.report.refresh_tokens_deleted += await refresh_tokens_db.delete_expired(self.conn)
        # Ended sessions whose access tokens have all run out need no refusing.
        await refresh_tokens_db.delete_ended(self.conn)

    async def forget_dead_workers(self) -> None:
        """Heartbeat rows of runners killed without a clean stop, a day on."""
        if not self.dry_run:
            await workers_db.delete_stale(self.conn, DEAD_WORKER_SECONDS)

    async def stale_uploads(self, older_than: timedelta) -> None:
        if not self.dry_run:
            self.report.uploads_aborted = await self.storage.abort_stale_uploads(older_than)

    async def scratch(self, older_than: timedelta) -> None:
        cutoff = time.time() - older_than.total_seconds()
        data_dir = Path(self.settings.data_dir)
        stale = await asyncio.to_thread(scratch.stale_in_data_dir, data_dir, cutoff)
        if not self.dry_run:
            await asyncio.to_thread(scratch.remove, stale)
        self.report.temp_files_removed += len(stale)
