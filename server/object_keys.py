"""Where each kind of object lives in storage — the one place keys are made.

Everything of a video sits under its prefix, so deleting a video is one
`delete_prefix` whatever was derived from it.
"""

from __future__ import annotations

import uuid


def video_prefix(user_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return f"videos/{user_id}/{video_id}/"


def source_key(user_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return video_prefix(user_id, video_id) + "source"


def tus_scratch_prefix(upload_id: uuid.UUID) -> str:
    """Temporary objects of an unfinished resumable upload (S3's tail)."""
    return f"tus/{upload_id}/"
