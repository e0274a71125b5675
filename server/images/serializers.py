"""JSON of images: the video JSON (metadata with `exif` and `image`) plus a signed
thumbnail link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.images.service import thumbnail_of
from server.search.model import SearchPage
from server.search.serializers import search_page_json
from server.videos.model import Video
from server.videos.serializers import video_json

# Makes the signed URL of an image's thumbnail and its expiry (ISO 8601).
ThumbnailLink = Callable[[Video], tuple[str, str]]


def thumbnail_path(image_id: object) -> str:
    return f"/api/v1/images/{image_id}/thumbnail"


def _thumbnail_json(image: Video, link: ThumbnailLink) -> dict[str, Any] | None:
    thumbnail = thumbnail_of(image)
    if thumbnail is None:
        return None
    url, expires_at = link(image)
    return {
        "url": url,
        "expires_at": expires_at,
        "path": thumbnail_path(image.id),
        "width": thumbnail.get("width"),
        "height": thumbnail.get("height"),
    }


def image_json(image: Video, link: ThumbnailLink) -> dict[str, Any]:
    body = video_json(image)
    body["thumbnail"] = _thumbnail_json(image, link)
    return body


def image_page_json(page: SearchPage, link: ThumbnailLink) -> dict[str, Any]:
    body = search_page_json(page)
    for item, hit in zip(body["items"], page.hits, strict=True):
        item["thumbnail"] = _thumbnail_json(hit.video, link)
    return body
