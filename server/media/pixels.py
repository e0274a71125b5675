"""The pixel limit, as ffmpeg's decoders enforce it (pure).

A few bytes of header can declare a gigantic picture, and a stream can
switch to a larger size half-way. ffmpeg's ``-max_pixels``, given as an
*input* option, makes that input's decoder refuse any picture above the
limit before allocating it (ffmpeg 5.1 and 9.x alike). Probes and every job
input get it, from the `max_pixels` setting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# libavutil's refusal of a picture above -max_pixels (same text in 5.1 and 9.x).
_REFUSED_RE = re.compile(r"Picture size (?P<w>\d+)x(?P<h>\d+) exceeds specified max pixel count")


def decoder_pixel_limit(max_pixels: int) -> int:
    """ffmpeg's ``-max_pixels`` value for pictures of at most ``max_pixels`` pixels.

    ffmpeg checks the size it allocates, which decoders pad (a 1000x1000 H.264
    frame asks for 1024x1000): give it headroom; the probe checks the exact
    declared size against ``max_pixels`` itself.
    """
    return max_pixels + max_pixels // 4 + 65536


def limit_input_pixels(args: Sequence[str], max_pixels: int) -> list[str]:
    """``args`` with ``-max_pixels`` before each ``-i``, so every input's decoder has the limit."""
    limited: list[str] = []
    for arg in args:
        if arg == "-i":
            limited += ["-max_pixels", str(decoder_pixel_limit(max_pixels))]
        limited.append(arg)
    return limited


def too_many_pixels_reason(width: int, height: int, max_pixels: int) -> str:
    return f"the picture is {width}x{height}, more than the {max_pixels} pixels allowed"


def refused_picture_reason(stderr: str, max_pixels: int) -> str | None:
    """The reason to show when ffmpeg's stderr says a decoder refused a picture, else None."""
    refused = _REFUSED_RE.search(stderr)
    if refused is None:
        return None
    return too_many_pixels_reason(int(refused["w"]), int(refused["h"]), max_pixels)
