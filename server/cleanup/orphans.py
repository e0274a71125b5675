"""Objects under `videos/` that no row references, deleted once they are old enough.

They come from a process killed between committing an upload's object and
inserting its row, from outputs a job wrote after its video was deleted, and
from anything else that lost its row without a `pending_deletions` record.
Storage is the only place that knows about them, so the step lists it
(`Storage.list_prefix`, streamed) and asks the database about one page at a
time; memory stays flat however many objects the bucket holds.

An object is deleted only when all of these hold:

- Its key sits inside a video prefix exactly as `object_keys` makes them.
  Anything else under `videos/` was not made by this code: it is logged and
  kept, never guessed about.
- No `videos` row has that id and owner, and the prefix is not recorded in
  `pending_deletions` (that step deletes it and clears its record).
- It is older than `older_than`: an upload's object exists before its row
  (probe, then insert), and S3 dates a multipart object from the start of its
  upload, so the sweep passes `stale_upload_seconds + orphan_grace_seconds`.

A dry run counts what would go and deletes nothing.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from server.db import orphans as orphans_db
from server.logs import get_logger
from server.object_keys import VIDEOS_ROOT, VideoPrefix, video_prefix_of
from server.storage.base import ObjectInfo, Storage

log = get_logger("frameflow.cleanup")

BATCH_SIZE = 1000


@dataclass
class OrphanReport:
    objects: int = 0  # deleted (in a dry run: would be)
    bytes: int = 0
    unknown_kept: int = 0  # keys under videos/ outside any video prefix


async def sweep_orphans(
    conn: asyncpg.Connection,
    storage: Storage,
    *,
    older_than: timedelta,
    dry_run: bool,
    now: datetime | None = None,
) -> OrphanReport:
    """One pass over `videos/`; see the module docstring for what goes."""
    cutoff = (now or datetime.now(UTC)) - older_than
    report = OrphanReport()
    batch: list[tuple[ObjectInfo, VideoPrefix]] = []
    async with aclosing(storage.list_prefix(VIDEOS_ROOT)) as listing:
        async for info in listing:
            if info.last_modified >= cutoff:
                continue
            owner = video_prefix_of(info.key)
            if owner is None:
                report.unknown_kept += 1
                continue
            batch.append((info, owner))
            if len(batch) >= BATCH_SIZE:
                await _settle(conn, storage, batch, report, dry_run)
                batch = []
    await _settle(conn, storage, batch, report, dry_run)
    if report.unknown_kept:
        log.warning("cleanup_unknown_objects_kept", prefix=VIDEOS_ROOT, count=report.unknown_kept)
    return report


async def _settle(
    conn: asyncpg.Connection,
    storage: Storage,
    batch: list[tuple[ObjectInfo, VideoPrefix]],
    report: OrphanReport,
    dry_run: bool,
) -> None:
    claimed = await orphans_db.claimed_prefixes(conn, {owner for _, owner in batch})
    for info, owner in batch:
        if owner.prefix in claimed:
            continue
        if not dry_run:
            await storage.delete(info.key)
            log.info("orphan_object_deleted", key=info.key, size=info.size)
        report.objects += 1
        report.bytes += info.size
