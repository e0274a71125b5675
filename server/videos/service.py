"""Video lifecycle operations that touch both the database and storage."""

from __future__ import annotations

import uuid

from aiohttp import web

from server import appkeys
from server.db import videos as videos_db
from server.errors import NotFound
from server.live.events import video_deleted_event
from server.logs import get_logger
from server.object_keys import video_prefix

log = get_logger("frameflow.videos")


async def delete_video(app: web.Application, user_id: uuid.UUID, video_id: uuid.UUID) -> None:
    async with app[appkeys.POOL].acquire() as conn:
        video = await videos_db.delete_video(conn, video_id, user_id)
    if video is None:
        raise NotFound("No such video", code="video_not_found")
    app[appkeys.BUS].publish(video_deleted_event(user_id, video_id))
    # Row (and quota) first, then bytes: a failure here leaves unreferenced
    # objects for a sweep to find, never a row that points at nothing.
    try:
        await app[appkeys.STORAGE].delete_prefix(video_prefix(user_id, video_id))
    except Exception:
        log.exception("video_objects_delete_failed", video_id=str(video_id))
    log.info("video_deleted", video_id=str(video_id), size=video.size)
