"""`QuotaLedger`: the one writer of `users.used_bytes` and the one place that
knows what a user holds.

A user holds the bytes of every stored source, every stored job output, and
the estimated outputs of every queued or running job. The three moments that
change it each happen inside the caller's transaction, next to the row change
they account for, so the counter can never drift from the rows:

- an upload is charged with its row (`charge_upload`, refused over the quota);
- a job holds its estimate from the moment it is queued (`hold_for_job`,
  refused over the quota) until the transaction that finishes it, which
  replaces the estimate with the real size of its outputs (`settle_job`);
- deleting a video gives back its source, its outputs and its jobs' holds
  (`release_video`);
- an unfinished resumable (tus) upload holds its declared length from its
  creation (`hold_for_tus`, refused over the quota) until it becomes a video,
  in whose transaction the hold is given back just before the video is
  charged, or until it expires or is terminated (`release_tus`).
"""

from __future__ import annotations

import uuid

import asyncpg

from server.db import quota as quota_db
from server.errors import PayloadTooLarge
from server.videos.model import Video


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def quota_exceeded_for_outputs(estimate: int, headroom: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The outputs would take about {human_bytes(estimate)}, but only "
        f"{human_bytes(headroom)} of your storage quota is left; delete some videos "
        "or ask for fewer or smaller outputs",
        code="quota_exceeded",
        estimated_bytes=estimate,
        remaining=headroom,
    )


class QuotaLedger:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def headroom(self, user_id: uuid.UUID) -> int:
        """Bytes the user may still store: a refusal up front, before any work."""
        async with self._pool.acquire() as conn:
            return await quota_db.headroom(conn, user_id)

    async def check_fits(self, user_id: uuid.UUID, estimate: int, *, also_needed: int = 0) -> None:
        """413 when `estimate` bytes of outputs (after `also_needed`) cannot fit now."""
        if not estimate:
            return
        headroom = max(await self.headroom(user_id) - also_needed, 0)
        if estimate > headroom:
            raise quota_exceeded_for_outputs(estimate, headroom)

    # --- inside the caller's transaction ---------------------------------------------

    @staticmethod
    async def charge_upload(conn: asyncpg.Connection, user_id: uuid.UUID, size: int) -> None:
        if not await quota_db.try_add(conn, user_id, size):
            raise PayloadTooLarge(
                "This upload would exceed your storage quota", code="quota_exceeded"
            )

    @staticmethod
    async def require_room(conn: asyncpg.Connection, user_id: uuid.UUID, estimate: int) -> None:
        """413 naming the whole `estimate` when it cannot fit (a batch, before its holds)."""
        if estimate <= 0:
            return
        headroom = await quota_db.headroom(conn, user_id)
        if estimate > headroom:
            raise quota_exceeded_for_outputs(estimate, max(headroom, 0))

    @staticmethod
    async def hold_for_job(
        conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID, estimate: int
    ) -> None:
        """Reserve a queued job's estimated outputs (413 when they do not fit)."""
        if estimate <= 0:
            return
        if not await quota_db.try_add(conn, user_id, estimate):
            raise quota_exceeded_for_outputs(estimate, await quota_db.headroom(conn, user_id))
        await quota_db.set_job_reservation(conn, job_id, estimate)

    @staticmethod
    async def settle_job(
        conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID, stored_delta: int = 0
    ) -> None:
        """A job has finished: its hold is replaced by the change in bytes its
        outputs really take (0 when it failed or was canceled)."""
        held = await quota_db.take_job_reservation(conn, job_id)
        if stored_delta - held:
            await quota_db.add(conn, user_id, stored_delta - held)

    @staticmethod
    async def hold_for_tus(
        conn: asyncpg.Connection, user_id: uuid.UUID, upload_id: uuid.UUID, total: int
    ) -> None:
        """Make an unfinished tus upload hold `total` bytes (413 when the increase does not
        fit; a smaller total gives the difference back)."""
        delta = total - await quota_db.tus_reservation(conn, upload_id)
        if delta > 0 and not await quota_db.try_add(conn, user_id, delta):
            headroom = await quota_db.headroom(conn, user_id)
            raise PayloadTooLarge(
                f"This upload would exceed your storage quota ({headroom} bytes left)",
                code="quota_exceeded",
                remaining=headroom,
            )
        if delta < 0:
            await quota_db.add(conn, user_id, delta)
        if delta:
            await quota_db.add_tus_reservation(conn, upload_id, delta)

    @staticmethod
    async def release_tus(
        conn: asyncpg.Connection, user_id: uuid.UUID, upload_id: uuid.UUID
    ) -> int:
        """Give back what a tus upload holds; returns the bytes released."""
        held = await quota_db.take_tus_reservation(conn, upload_id)
        if held:
            await quota_db.add(conn, user_id, -held)
        return held

    @staticmethod
    async def video_total(conn: asyncpg.Connection, video: Video) -> int:
        """Everything the video counts for: source, outputs and its jobs' holds."""
        return video.size + await quota_db.bytes_held_by_video(conn, video.id)

    @classmethod
    async def release_video(cls, conn: asyncpg.Connection, video: Video) -> int:
        """Give back everything the video counts for; call before deleting its row.
        Returns the bytes released."""
        total = await cls.video_total(conn, video)
        await quota_db.add(conn, video.user_id, -total)
        return total
