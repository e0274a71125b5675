"""The settings' limits on what a job may read and write, checked before any work."""

from __future__ import annotations

from config.settings import Settings
from server.errors import BadRequest
from server.jobs.operations.argv import decimal
from server.jobs.operations.geometry import display_size
from server.jobs.operations.params import invalid
from server.videos.model import Video

# The smallest output width or height any operation accepts.
MIN_OUTPUT_SIDE = 16
# Browsers and image decoders cope with JPEGs up to here; the format allows 65535.
MAX_IMAGE_SIDE = 16384


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


def check_source_pixels(video: Video, settings: Settings) -> None:
    """The pixel limit on the source as displayed: 400 `input_too_large` on `video`."""
    width, height = display_size(video)
    if over := _over_pixel_limit(width, height, settings):
        raise BadRequest(f"the video is {over}", code="input_too_large", field="video")


def check_pixels(size: tuple[int, int], settings: Settings, field: str) -> None:
    """The pixel limit on an output of `size`: 400 naming the param that sets it."""
    if over := _over_pixel_limit(*size, settings):
        raise invalid(field, f"the output would be {over}")


def _over_pixel_limit(width: int, height: int, settings: Settings) -> str | None:
    if width * height <= settings.max_pixels:
        return None
    return f"{width}x{height}, more than the {settings.max_pixels} pixels allowed"
