"""Where each kind of object lives in storage — the one place keys are made.

Everything of a video sits under its prefix, so deleting a video is one
`delete_prefix` whatever was derived from it. Conversely, the sweep deletes
objects under `videos/` whose video row is gone (`cleanup/orphans.py`): a new
kind of object under `videos/` must sit under a video's prefix too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

VIDEOS_ROOT = "videos/"


def video_prefix(user_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return f"{VIDEOS_ROOT}{user_id}/{video_id}/"


def source_key(user_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return video_prefix(user_id, video_id) + "source"


def image_key(user_id: uuid.UUID, video_id: uuid.UUID, extension: str) -> str:
    """An image as stored after its EXIF was stripped (the upload stays at `source`
    until the image's row is committed, then goes)."""
    return video_prefix(user_id, video_id) + f"image.{extension}"


def image_thumbnail_key(user_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return video_prefix(user_id, video_id) + "thumbnail.jpg"


@dataclass(frozen=True)
class VideoPrefix:
    """The video prefix that holds a key, as `video_prefix_of` found it."""

    user_id: uuid.UUID
    video_id: uuid.UUID

    @property
    def prefix(self) -> str:
        return video_prefix(self.user_id, self.video_id)


def video_prefix_of(key: str) -> VideoPrefix | None:
    """The video whose prefix holds `key`; None when the key is not inside one
    exactly as `video_prefix` writes it (so a stranger's key is never taken for ours)."""
    parts = key.split("/", 3)
    if len(parts) != 4 or parts[0] + "/" != VIDEOS_ROOT or not parts[3]:
        return None
    try:
        user_id, video_id = uuid.UUID(parts[1]), uuid.UUID(parts[2])
    except ValueError:
        return None
    found = VideoPrefix(user_id, video_id)
    return found if key.startswith(found.prefix) else None


def sourceless_job_prefix(user_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """Scratch objects of a job without a source video (a generation)."""
    return f"work/{user_id}/{job_id}/"


def tus_scratch_prefix(upload_id: uuid.UUID) -> str:
    """Temporary objects of an unfinished resumable upload (S3's tail)."""
    return f"tus/{upload_id}/"
