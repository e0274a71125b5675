"""`ImageService`: the user's image library, apart from their videos.

An image is a `videos` row of kind `image` (uploads make it: limits, EXIF,
thumbnail and de-duplication are `uploads/images.py`'s), so a generation or
any other domain refers to one by its video id: `get` is the check that the
id names an image the user owns.
"""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg

from server.db import videos as videos_db
from server.errors import NotFound
from server.search.model import SearchPage, SearchQuery
from server.search.service import SearchService
from server.videos.model import Video

IMAGE_KIND = "image"


def _not_found() -> NotFound:
    return NotFound("No such image", code="image_not_found")


def thumbnail_of(image: Video) -> dict[str, object] | None:
    """The thumbnail's metadata (width, height, size, content_type), when it has one
    (images uploaded before thumbnails were made have none)."""
    image_meta = image.metadata.get("image")
    thumbnail = image_meta.get("thumbnail") if isinstance(image_meta, dict) else None
    return thumbnail if isinstance(thumbnail, dict) else None


class ImageService:
    def __init__(self, *, pool: asyncpg.Pool, search: SearchService) -> None:
        self._pool = pool
        self._search = search

    async def page(self, user_id: uuid.UUID, query: SearchQuery) -> SearchPage:
        """One page of the user's images: the video search with the kind fixed."""
        filters = dataclasses.replace(query.filters, kind=IMAGE_KIND)
        return await self._search.search(user_id, dataclasses.replace(query, filters=filters))

    async def get(self, user_id: uuid.UUID, image_id: uuid.UUID) -> Video:
        """The user's image; 404 `image_not_found` for a video, or someone else's."""
        async with self._pool.acquire() as conn:
            image = await videos_db.get_video(conn, image_id, user_id)
        if image is None or image.kind != IMAGE_KIND:
            raise _not_found()
        return image

    async def get_by_link(self, image_id: uuid.UUID) -> Video:
        """An image reached through a signed link (the signature is its authority)."""
        async with self._pool.acquire() as conn:
            image = await videos_db.get_video(conn, image_id, None)
        if image is None or image.kind != IMAGE_KIND:
            raise _not_found()
        return image
