"""The source as displayed (size, frame rate), and output sizes computed like ffmpeg's scale."""

from __future__ import annotations

from server.videos.model import Video


def display_size(video: Video) -> tuple[int, int]:
    """Width and height as shown: ffmpeg auto-rotates, so filters see these."""
    width, height = int(video.metadata["width"]), int(video.metadata["height"])
    if video.metadata.get("rotation") in (90, 270):
        return height, width
    return width, height


def source_fps(video: Video) -> float | None:
    """The source's frame rate as probed; None when unknown (a still, or no rate found)."""
    fps = video.metadata.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0:
        return None
    return float(fps)


def fit_size(
    source: tuple[int, int], width: int | None, height: int | None, *, even: bool
) -> tuple[int, int]:
    """Output size for a requested width and/or height; one given keeps the aspect.

    The same arithmetic as ffmpeg's `scale=W:-2` (round to nearest, then to a
    multiple of 2 when `even`), done here so that limits are checked on, and
    argv carries, the exact size.
    """
    src_w, src_h = source
    step = 2 if even else 1
    if width is None and height is None:
        return src_w, src_h
    if width is not None and height is not None:
        return width, height
    if width is not None:
        return width, max(step, _rescale(width, src_h, src_w * step) * step)
    assert height is not None
    return max(step, _rescale(height, src_w, src_h * step) * step), height


def _rescale(a: int, b: int, c: int) -> int:
    # a * b / c rounded half away from zero, like av_rescale.
    return (a * b + c // 2) // c
