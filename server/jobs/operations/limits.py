"""The settings' limits on what a job may read and write, checked before any work."""

from __future__ import annotations

from config.settings import Settings
from server.db.videos import Video
from server.errors import BadRequest
from server.jobs.operations.argv import decimal
from server.jobs.operations.params import invalid


def source_duration(video: Video, settings: Settings) -> float:
    """The video's duration, checked against the input limit before any work starts."""
    duration = video.metadata.get("duration")
    if not isinstance(duration, int | float) or duration <= 0:
        raise BadRequest(
            "the video's duration is unknown, so it cannot be processed",
            code="invalid_source",
            field="video",
        )
    if duration > settings.max_input_duration_seconds:
        raise BadRequest(
            f"the video is {decimal(duration)} s long; jobs accept at most "
            f"{decimal(settings.max_input_duration_seconds)} s",
            code="input_too_long",
            field="video",
        )
    return float(duration)


def check_pixels(size: tuple[int, int], settings: Settings, field: str) -> None:
    width, height = size
    if width * height > settings.max_pixels:
        raise invalid(
            field,
            f"the output would be {width}x{height}, more than the "
            f"{settings.max_pixels} pixels allowed",
        )
