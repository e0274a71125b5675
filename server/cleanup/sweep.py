"""One cleanup pass: expired videos, unfinished deletes, orphans, stale uploads, scratch files.

Safety rules, in the order the pass applies them:

- One instance at a time: the pass runs under a session-level PostgreSQL
  advisory lock taken with `pg_try_advisory_lock`; an instance that does not
  get it reports `skipped` and leaves the work to the holder.
- Never delete what a job uses: a video with a queued or running job is kept
  until its jobs end (see `videos_db.delete_expired_video` for why no job can
  slip in between the check and the delete).
- Row first, bytes second: the row (and its quota) go in one transaction that
  also records the video's prefix in `pending_deletions`; the objects are
  deleted afterwards and the record cleared. A crash or storage error in
  between leaves unreferenced bytes and the record, never a row pointing at
  missing bytes; the next pass deletes every recorded prefix again.
- Objects that no row references at all are found by listing storage
  (`orphans.py`), and only once older than any upload in flight can be.
- Dry run reads only: it lists what a real pass would remove.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from config.settings import Settings
from server.cleanup.orphans import sweep_orphans
from server.db import videos as videos_db
from server.live.events import video_deleted_event
from server.logs import get_logger
from server.object_keys import video_prefix
from server.storage.base import Storage

log = get_logger("frameflow.cleanup")

# Any fixed 64-bit number shared by every instance; differs from the migration lock.
CLEANUP_LOCK_ID = 0x46_66_43_6C_65_61_6E_31  # "FfClean1"
BATCH_SIZE = 100
# Scratch roots under the data dir. `work/` holds one dir per job attempt;
# `tmp/` holds one dir per backend (`tmp/s3`, kept: the storage writes into
# it) whose entries are the per-operation scratch dirs.
WORK_DIR = "work"
TMP_DIR = "tmp"

Publish = Callable[[dict[str, Any]], None]


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
    video_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_sweep(
    pool: asyncpg.Pool,
    storage: Storage,
    settings: Settings,
    *,
    publish: Publish | None = None,
    dry_run: bool = False,
    stale_after: timedelta | None = None,
    orphans_after: timedelta | None = None,
) -> CleanupReport:
    """One pass; `stale_after` overrides `stale_upload_seconds`, `orphans_after` the
    age at which unreferenced objects go (tests, the CLI)."""
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
            sweep = _Sweep(conn, storage, settings, publish, report)
            await sweep.step("expired_videos", sweep.expired_videos)
            await sweep.step("pending_deletions", sweep.pending_deletions)
            await sweep.step("orphans", lambda: sweep.orphans(orphans_after))
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
        storage: Storage,
        settings: Settings,
        publish: Publish | None,
        report: CleanupReport,
    ) -> None:
        self.conn = conn
        self.storage = storage
        self.settings = settings
        self.publish = publish
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
            last = batch[-1].video
            assert last.expires_at is not None  # always set on stored rows
            after = (last.expires_at, last.id)
            for candidate in batch:
                if self.dry_run:
                    self._count(candidate)
                    continue
                deleted = await videos_db.delete_expired_video(self.conn, candidate.video.id, now)
                if deleted is None:
                    continue  # a job arrived, or it is gone already: not ours to count
                self._count(deleted)
                video = deleted.video
                if self.publish is not None:
                    self.publish(video_deleted_event(video.user_id, video.id))
                log.info("video_expired", video_id=str(video.id), size=deleted.total_size)
                await self._delete_prefix(video_prefix(video.user_id, video.id))

    def _count(self, expired: videos_db.ExpiredVideo) -> None:
        self.report.videos_deleted += 1
        self.report.bytes_freed += expired.total_size
        self.report.video_ids.append(str(expired.video.id))

    async def pending_deletions(self) -> None:
        """Prefixes whose row is gone but whose delete did not finish (crash, storage error),
        including those of videos their owners deleted."""
        now: datetime = await self.conn.fetchval("SELECT now()")
        prefixes = await videos_db.pending_deletions(self.conn, now, limit=10_000)
        for prefix in prefixes:
            if self.dry_run or await self._delete_prefix(prefix):
                self.report.pending_prefixes_removed += 1

    async def _delete_prefix(self, prefix: str) -> bool:
        try:
            await self.storage.delete_prefix(prefix)
        except Exception as exc:
            # The pending_deletions row stays: the next pass tries again.
            log.exception("cleanup_delete_prefix_failed", prefix=prefix)
            self.report.errors.append(f"delete {prefix}: {type(exc).__name__}: {exc}")
            return False
        await videos_db.clear_pending_deletion(self.conn, prefix)
        return True

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

    async def stale_uploads(self, older_than: timedelta) -> None:
        if not self.dry_run:
            self.report.uploads_aborted = await self.storage.abort_stale_uploads(older_than)

    async def scratch(self, older_than: timedelta) -> None:
        cutoff = time.time() - older_than.total_seconds()
        data_dir = Path(self.settings.data_dir)
        stale = await asyncio.to_thread(stale_scratch, data_dir, cutoff)
        if not self.dry_run:
            await asyncio.to_thread(_remove_all, stale)
        self.report.temp_files_removed += len(stale)


def stale_scratch(data_dir: Path, cutoff: float) -> list[Path]:
    """Scratch entries nothing has touched since `cutoff` (newest mtime inside counts:
    a live job keeps writing into its dir, so it never looks stale)."""
    roots = [data_dir / WORK_DIR]
    tmp = data_dir / TMP_DIR
    found: list[Path] = []
    if tmp.is_dir():
        for entry in tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                roots.append(entry)
            elif _newest_mtime(entry) < cutoff:
                found.append(entry)
    for root in roots:
        if root.is_dir():
            found += [entry for entry in root.iterdir() if _newest_mtime(entry) < cutoff]
    return found


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    except FileNotFoundError:
        return float("inf")  # changing under us: not stale
    return newest


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
