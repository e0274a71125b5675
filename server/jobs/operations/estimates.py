"""Rough sizes of an operation's outputs, for the quota check at job creation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from server.jobs.operations.protocol import Operation
from server.videos.model import Video

# Rough bytes per pixel of a still at the quality the operations use (JPEG
# q 2-3 on camera footage lands around 0.2-0.4; PNG about twice that).
JPEG_BYTES_PER_PIXEL = 0.3
PNG_BYTES_PER_PIXEL = 0.6
# Container overhead on top of the streams' bitrates (MP4/TS/fMP4 headers, index).
MUX_OVERHEAD = 1.05
# The frame rate assumed for a source whose rate is unknown.
ASSUMED_FPS = 30.0


def estimated_output_bytes(op: Operation, params: Mapping[str, Any], video: Video) -> int | None:
    """`op`'s estimate of its outputs, or None when it has no estimator."""
    estimate = getattr(op, "estimate_output_bytes", None)
    if estimate is None:
        return None
    return max(0, int(estimate(params, video)))


def bitrate_bytes(kbps: float, seconds: float) -> int:
    """Bytes of `seconds` at `kbps` kilobits per second."""
    return math.ceil(kbps * 1000 / 8 * seconds * MUX_OVERHEAD)


def still_bytes(size: tuple[int, int], fmt: str = "jpg") -> int:
    per_pixel = PNG_BYTES_PER_PIXEL if fmt == "png" else JPEG_BYTES_PER_PIXEL
    return math.ceil(size[0] * size[1] * per_pixel)
