"""`VideoService`: reading videos, and the one path that deletes them.

Deleting is the same for a user's DELETE and for the expiry sweep:
row first, bytes second. One transaction gives the owner back everything
the video counted for (the quota ledger), deletes the row (its jobs and
outputs cascade) and records its prefix in `pending_deletions`; then the
event goes out and the prefix is deleted, and the record cleared. A crash
or storage error in between leaves unreferenced bytes and the record —
the sweep deletes the prefix again — never a row pointing at nothing.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server.audit.model import SYSTEM, Actor, Origin, Target
from server.audit.service import AuditLog
from server.db import videos as videos_db
from server.errors import NotFound
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.object_keys import video_prefix
from server.quota.ledger import QuotaLedger
from server.storage.base import Storage
from server.videos.metadata import MetadataPatch
from server.videos.model import Video

log = get_logger("frameflow.videos")


@dataclass(frozen=True)
class DeletedVideo:
    video: Video
    bytes_freed: int  # source, outputs and open job holds
    objects_deleted: bool  # False: storage failed; the sweep retries the prefix


def _not_found() -> NotFound:
    return NotFound("No such video", code="video_not_found")


# Videos kept for playback with a bearer token, and ids deleted by this process.
_PLAYBACK_CACHE_SIZE = 4096
_DELETED_MEMORY = 4096


class VideoService:
    def __init__(
        self, *, pool: asyncpg.Pool, storage: Storage, publisher: EventPublisher, audit: AuditLog
    ) -> None:
        self._pool = pool
        self._storage = storage
        self._publisher = publisher
        self._audit = audit
        # Playback without a query per range request. Only on local storage: what
        # serving needs never changes under a video id, and a deleted video's file
        # is gone, which serving sees when it opens the file (on any instance),
        # before it sends a byte. On S3 that would cost a HEAD, as much as the query.
        self._playback: OrderedDict[uuid.UUID, Video] = OrderedDict()
        self._cache_playback = storage.sendfile_path("probe") is not None
        # Deleted here, for the rare case where deleting the files failed (the sweep
        # retries them): signed links must not serve them meanwhile.
        self._deleted: OrderedDict[uuid.UUID, None] = OrderedDict()

    async def list_page(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[Video]:
        """Newest first; `limit` rows after the `before` cursor."""
        async with self._pool.acquire() as conn:
            return await videos_db.list_videos(conn, user_id, limit=limit, before=before)

    async def get(self, user_id: uuid.UUID, video_id: uuid.UUID) -> Video:
        """The user's video; 404 also when it is someone else's."""
        async with self._pool.acquire() as conn:
            video = await videos_db.get_video(conn, video_id, user_id)
        if video is None:
            raise _not_found()
        return video

    async def get_for_playback(self, user_id: uuid.UUID, video_id: uuid.UUID) -> Video:
        """`get`, from memory on local storage: serving checks that the file still exists."""
        video = self._playback.get(video_id)
        if video is None or video.user_id != user_id:
            video = await self.get(user_id, video_id)
            if self._cache_playback:
                self._playback[video_id] = video
                if len(self._playback) > _PLAYBACK_CACHE_SIZE:
                    self._playback.popitem(last=False)
        return video

    def deleted_here(self, video_id: uuid.UUID) -> bool:
        """Deleted through this process (its files may outlive the row briefly)."""
        return video_id in self._deleted

    async def update_metadata(
        self, user_id: uuid.UUID, video_id: uuid.UUID, patch: MetadataPatch
    ) -> Video:
        """Apply the fields present in `patch`; the others keep their values."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Locked: two PATCHes of different fields must not undo each other.
            video = await videos_db.lock_video(conn, video_id, user_id)
            if video is None:
                raise _not_found()
            title = None if patch.reset_title else (patch.title or video.title)
            updated = await videos_db.update_metadata(
                conn,
                video_id,
                user_id,
                title=title,
                description=video.description if patch.description is None else patch.description,
                tags=video.tags if patch.tags is None else patch.tags,
            )
        assert updated is not None
        return updated

    async def get_by_link(self, video_id: uuid.UUID) -> Video:
        """A video reached through a signed link (the signature is its authority)."""
        async with self._pool.acquire() as conn:
            video = await videos_db.get_video(conn, video_id, None)
        if video is None:
            raise _not_found()
        return video

    async def delete(
        self,
        user_id: uuid.UUID | None,
        video_id: uuid.UUID,
        *,
        actor: Actor,
        origin: Origin | None = None,
    ) -> DeletedVideo:
        """The owner's delete (`user_id`), or an admin's of anyone's video (None)."""
        async with self._pool.acquire() as conn, conn.transaction():
            video = await videos_db.lock_video(conn, video_id, user_id)
            if video is None:
                raise _not_found()
            freed = await self._delete_row(conn, video)
            reason = "owner" if user_id is not None else "admin"
            await self._record_delete(conn, video, freed, actor, origin, reason)
        deleted = await self._forget(video, freed)
        log.info("video_deleted", video_id=str(video.id), size=freed)
        return deleted

    async def delete_if_expired(self, video_id: uuid.UUID, now: datetime) -> DeletedVideo | None:
        """The sweep's delete: None when the video was kept (a job appeared, its
        TTL was extended, or it is gone already)."""
        async with self._pool.acquire() as conn, conn.transaction():
            video = await videos_db.lock_expired_unused_video(conn, video_id, now)
            if video is None:
                return None
            freed = await self._delete_row(conn, video)
            await self._record_delete(conn, video, freed, SYSTEM, None, "expired")
        deleted = await self._forget(video, freed)
        log.info("video_expired", video_id=str(video.id), size=freed)
        return deleted

    async def bytes_freed_by(self, video: Video) -> int:
        """What deleting `video` would free (for a dry run)."""
        async with self._pool.acquire() as conn:
            return await QuotaLedger.video_total(conn, video)

    async def delete_pending_prefix(self, prefix: str) -> None:
        """Delete the objects of a video whose row is already gone; raises when storage
        fails (the record stays for the next try)."""
        await self._storage.delete_prefix(prefix)
        async with self._pool.acquire() as conn:
            await videos_db.clear_pending_deletion(conn, prefix)

    async def pending_prefixes(self, older_than: datetime, limit: int) -> list[str]:
        async with self._pool.acquire() as conn:
            return await videos_db.pending_deletions(conn, older_than, limit)

    async def _record_delete(
        self,
        conn: asyncpg.Connection,
        video: Video,
        freed: int,
        actor: Actor,
        origin: Origin | None,
        reason: str,
    ) -> None:
        await self._audit.record(
            "video.delete",
            actor=actor,
            target=Target("video", str(video.id)),
            detail={
                "reason": reason,
                "owner_id": str(video.user_id),
                "filename": video.filename,
                "bytes_freed": freed,
            },
            origin=origin,
            conn=conn,
        )

    @staticmethod
    async def _delete_row(conn: asyncpg.Connection, video: Video) -> int:
        freed = await QuotaLedger.release_video(conn, video)
        await videos_db.delete_video(conn, video.id, video.user_id)
        return freed

    async def _forget(self, video: Video, freed: int) -> DeletedVideo:
        self._playback.pop(video.id, None)
        self._deleted[video.id] = None
        if len(self._deleted) > _DELETED_MEMORY:
            self._deleted.popitem(last=False)
        self._publisher.video_deleted(video.user_id, video.id)
        prefix = video_prefix(video.user_id, video.id)
        try:
            await self.delete_pending_prefix(prefix)
        except Exception:
            log.exception("video_objects_delete_failed", video_id=str(video.id), prefix=prefix)
            return DeletedVideo(video, freed, objects_deleted=False)
        return DeletedVideo(video, freed, objects_deleted=True)
