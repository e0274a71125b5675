"""`thumbnail`: a JPEG of a video at a chosen time (or of an image), and optionally
a sprite sheet with a WebVTT storyboard for scrubbing previews.

Outputs: `thumbnail.jpg`; with `sprite: true` also `sprite.jpg` and
`storyboard.vtt`, whose cues point at tiles as `sprite.jpg#xywh=x,y,w,h` — a
relative URL, so it resolves next to the VTT under the path-token URL scheme.

The sprite is made in two ffmpeg runs: one writes each tile as a small PNG
(its out_time drives progress), one tiles them. A single run with the `tile`
filter would emit its one frame only at the very end, so ffmpeg would report
no progress until then on a long video.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import decimal, input_args
from server.jobs.operations.estimates import still_bytes
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.geometry import display_size, fit_size
from server.jobs.operations.limits import (
    MAX_IMAGE_SIDE,
    MIN_OUTPUT_SIDE,
    check_pixels,
    source_duration,
)
from server.jobs.operations.outputs import store_file
from server.jobs.operations.params import (
    OperationParams,
    check_at_most,
    invalid,
    read_params,
    validated_params,
)
from server.jobs.operations.protocol import OperationFailed
from server.media.progress import scaled
from server.videos.model import Video

THUMBNAIL_NAME = "thumbnail.jpg"
SPRITE_NAME = "sprite.jpg"
STORYBOARD_NAME = "storyboard.vtt"

DEFAULT_TIME_FRACTION = 0.1
DEFAULT_SPRITE_COLUMNS = 10
MAX_SPRITE_COLUMNS = 50
DEFAULT_SPRITE_WIDTH = 160
MAX_SPRITE_WIDTH = 640
MIN_SPRITE_INTERVAL = 0.1
# Enough for a 4-hour video at one tile every 6 s; a storyboard is for scrubbing.
MAX_SPRITE_TILES = 2500
# Seconds before the end from which the last frame is looked for when the
# requested time is past the last video frame (audio may outlast video).
LAST_FRAME_WINDOW = 3.0


@dataclass(frozen=True)
class SpriteLayout:
    interval: float
    tiles: int  # tiles with a cue; the grid may have blank cells after them
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.columns * self.tile_width, self.rows * self.tile_height


def sprite_layout(
    video: Video,
    duration: float,
    interval: float,
    columns: int,
    tile_width: int,
    tiles: int | None = None,
) -> SpriteLayout:
    """The grid for `tiles` tiles (default: one per `interval` over the whole video)."""
    count = tiles if tiles is not None else max(1, math.ceil(duration / interval))
    cols = max(1, min(columns, count))
    _, tile_height = fit_size(display_size(video), tile_width, None, even=True)
    return SpriteLayout(interval, count, cols, math.ceil(count / cols), tile_width, tile_height)


class ThumbnailParams(OperationParams):
    """A JPEG of a video at a chosen time, and optionally a sprite sheet with a storyboard."""

    time: Annotated[
        float | None,
        Field(
            ge=0,
            description="Second of the video to take; less than the duration. "
            "Default: 10% of the duration.",
        ),
    ] = None
    width: Annotated[
        int | None,
        Field(
            ge=MIN_OUTPUT_SIDE,
            multiple_of=2,
            description="Width of the thumbnail, at most the video's; the height keeps the "
            "aspect ratio. Default: the video's size.",
        ),
    ] = None
    sprite: Annotated[
        bool,
        Field(description="Also make sprite.jpg (a grid of tiles) and storyboard.vtt."),
    ] = False
    sprite_interval: Annotated[
        float | None,
        Field(
            ge=MIN_SPRITE_INTERVAL,
            description="Seconds between tiles, at most the duration (with sprite). "
            "Default: about 100 tiles, at least 1 s apart.",
        ),
    ] = None
    sprite_columns: Annotated[
        int,
        Field(ge=1, le=MAX_SPRITE_COLUMNS, description="Tiles per row (with sprite)."),
    ] = DEFAULT_SPRITE_COLUMNS
    sprite_width: Annotated[
        int,
        Field(
            ge=MIN_OUTPUT_SIDE,
            le=MAX_SPRITE_WIDTH,
            multiple_of=2,
            description="Width of each tile (with sprite).",
        ),
    ] = DEFAULT_SPRITE_WIDTH


class ThumbnailImageParams(OperationParams):
    """A JPEG of an image, optionally smaller."""

    width: Annotated[
        int | None,
        Field(
            ge=1,
            description="Width of the thumbnail, at most the image's; the height keeps the "
            "aspect ratio. Default: the image's size.",
        ),
    ] = None


PARAM_MODELS: Mapping[str, type[OperationParams]] = MappingProxyType(
    {"video": ThumbnailParams, "image": ThumbnailImageParams}
)
_SPRITE_ONLY = ("sprite_interval", "sprite_columns", "sprite_width")


def parse_params(raw: Mapping[str, Any], video: Video, settings: Settings) -> dict[str, Any]:
    size = display_size(video)
    if video.kind == "image":
        image = read_params(ThumbnailImageParams, raw, settings, siblings=PARAM_MODELS)
        check_at_most("width", image.width, size[0])  # no upscaling
        check_pixels(fit_size(size, image.width, None, even=False), settings, "width")
        return {"width": image.width}

    p = read_params(ThumbnailParams, raw, settings, siblings=PARAM_MODELS)
    duration = source_duration(video, settings)
    time = duration * DEFAULT_TIME_FRACTION if p.time is None else p.time
    if time >= duration:
        raise invalid("time", f"must be less than the duration ({decimal(duration)} s)")
    check_at_most("width", p.width, max(MIN_OUTPUT_SIDE, size[0]))  # no upscaling
    check_pixels(fit_size(size, p.width, None, even=True), settings, "width")

    params: dict[str, Any] = {
        "time": time,
        "width": p.width,
        "sprite": p.sprite,
        "sprite_interval": None,
        "sprite_columns": None,
        "sprite_width": None,
    }
    if not p.sprite:
        for name in _SPRITE_ONLY:
            if name in p.model_fields_set:
                raise invalid(name, "applies only with sprite: true")
        return params

    # About 100 tiles, at least a second apart (a clip shorter than that: one tile).
    default_interval = min(duration, max(1.0, duration / 100))
    interval = default_interval if p.sprite_interval is None else p.sprite_interval
    check_at_most("sprite_interval", interval, duration)
    columns, tile_width = p.sprite_columns, p.sprite_width
    layout = sprite_layout(video, duration, interval, columns, tile_width)
    if layout.tiles > MAX_SPRITE_TILES:
        raise invalid(
            "sprite_interval",
            f"would make {layout.tiles} tiles; at most {MAX_SPRITE_TILES} (use a longer interval)",
        )
    sprite_w, sprite_h = layout.size
    if max(sprite_w, sprite_h) > MAX_IMAGE_SIDE:
        raise invalid(
            "sprite_interval",
            f"the sprite would be {sprite_w}x{sprite_h}; at most {MAX_IMAGE_SIDE} per side "
            "(use a longer interval, more columns or narrower tiles)",
        )
    check_pixels(layout.size, settings, "sprite_width")
    params.update(sprite_interval=interval, sprite_columns=columns, sprite_width=tile_width)
    return params


def _jpeg_out(path: Path, *, quality: int = 2) -> list[str]:
    # -update 1: one image written to one file name, not a numbered sequence.
    return [
        "-c:v",
        "mjpeg",
        "-q:v",
        str(quality),
        "-f",
        "image2",
        "-update",
        "1",
        "file:" + str(path),
    ]


def _scale(video: Video, width: int | None, *, even: bool) -> list[str]:
    if width is None:
        return []
    w, h = fit_size(display_size(video), width, None, even=even)
    return ["-vf", f"scale={w}:{h}"]


def thumbnail_argv(
    params: Mapping[str, Any], video: Video, source: Path, out: Path, *, last_frame: bool = False
) -> list[str]:
    """One JPEG at params["time"] (or of the image). Pure.

    `last_frame` is the fallback when nothing decodes at or after that time:
    read the last few seconds and keep overwriting the file, so the last
    frame — the one on screen at that time — is what remains.
    """
    width = params.get("width")
    if video.kind == "image":
        return [
            *input_args(video, source),
            "-frames:v",
            "1",
            *_scale(video, width, even=False),
            *_jpeg_out(out),
        ]
    # -ss before -i: a fast keyframe seek, then decoding only up to the time.
    seek = (
        ["-sseof", decimal(-LAST_FRAME_WINDOW)]
        if last_frame
        else ["-ss", decimal(float(params["time"]))]
    )
    frames = [] if last_frame else ["-frames:v", "1"]
    return [
        *seek,
        *input_args(video, source),
        "-map",
        "0:V:0",
        *frames,
        *_scale(video, width, even=True),
        *_jpeg_out(out),
    ]


def tiles_argv(video: Video, source: Path, tile_dir: Path, layout: SpriteLayout) -> list[str]:
    """Step 1 of the sprite: one small PNG per interval. Pure."""
    return [
        *input_args(video, source),
        "-map",
        "0:V:0",
        "-vf",
        f"fps=1/{decimal(layout.interval)},scale={layout.tile_width}:{layout.tile_height}",
        "-fps_mode",
        "vfr",
        "-frames:v",
        str(layout.tiles),
        "-c:v",
        "png",
        "-f",
        "image2",
        "-start_number",
        "0",
        "file:" + str(tile_dir / "tile_%06d.png"),
    ]


def sprite_argv(tile_dir: Path, out: Path, layout: SpriteLayout) -> list[str]:
    """Step 2 of the sprite: tile the PNGs into one JPEG. Pure.

    The input is our own numbered PNGs, read with the image2 demuxer, which
    is not on the upload allow-list: the pattern and every file it matches
    were made by step 1 in the job's scratch directory, never by a user.
    """
    return [
        "-protocol_whitelist",
        "file",
        "-f",
        "image2",
        "-framerate",
        "1",
        "-start_number",
        "0",
        "-i",
        "file:" + str(tile_dir / "tile_%06d.png"),
        "-vf",
        f"tile={layout.columns}x{layout.rows}",
        "-frames:v",
        "1",
        *_jpeg_out(out, quality=3),
    ]


def storyboard_vtt(layout: SpriteLayout, duration: float, sprite_url: str = SPRITE_NAME) -> str:
    """WebVTT with one cue per tile, `sprite.jpg#xywh=x,y,w,h` (pure)."""
    lines = ["WEBVTT", ""]
    for index in range(layout.tiles):
        start = index * layout.interval
        last = index == layout.tiles - 1
        end = duration if last else min((index + 1) * layout.interval, duration)
        x = (index % layout.columns) * layout.tile_width
        y = (index // layout.columns) * layout.tile_height
        lines += [
            f"{vtt_time(start)} --> {vtt_time(max(end, start))}",
            f"{sprite_url}#xywh={x},{y},{layout.tile_width},{layout.tile_height}",
            "",
        ]
    return "\n".join(lines)


def vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


class ThumbnailOperation:
    name = "thumbnail"
    kinds = frozenset({"video", "image"})
    summary = (
        "thumbnail.jpg of a video at a chosen time (or of an image); optionally a sprite "
        "sheet, sprite.jpg, with a WebVTT storyboard, storyboard.vtt."
    )
    param_models = PARAM_MODELS

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return parse_params(raw, video, settings)

    def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int:
        width = params["width"]
        still = still_bytes(
            fit_size(display_size(video), int(width) if width else None, None, even=False)
        )
        if not params.get("sprite"):
            return still
        duration = float(video.metadata.get("duration") or 0)
        layout = sprite_layout(
            video,
            duration,
            float(params["sprite_interval"]),
            int(params["sprite_columns"]),
            int(params["sprite_width"]),
        )
        # The sprite sheet, plus one WebVTT cue (~64 bytes) per tile.
        return still + still_bytes(layout.size) + layout.tiles * 64

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        params = validated_params(self, ctx)
        sprite = bool(params.get("sprite"))
        thumb = ctx.workdir / THUMBNAIL_NAME
        # Percent at which each step ends: the sprite reads the whole video.
        thumb_end = 10.0 if sprite else 90.0
        async with source_file(ctx) as source:
            await self._thumbnail(ctx, params, source, thumb, thumb_end)
            outputs_to_store = [(thumb, THUMBNAIL_NAME)]
            if sprite:
                outputs_to_store += await self._sprite(ctx, params, source)
        outputs = []
        for path, name in outputs_to_store:
            outputs.append(await store_file(ctx, path, name))
        ctx.report_progress(100.0)
        return outputs

    async def _thumbnail(
        self, ctx: JobContext, params: dict[str, Any], source: Path, out: Path, end: float
    ) -> None:
        progress = scaled(ctx.report_progress, 0, end)
        argv = thumbnail_argv(params, ctx.video, source, out)
        if ctx.video.kind == "image":
            await run_ffmpeg_with_progress(ctx, argv, duration=None, on_percent=progress)
            if not await _nonempty(out):
                raise OperationFailed("the image could not be decoded")
            return
        # ffmpeg fails when no frame decodes at or after the time: it is within
        # the last frame's display time, or the audio outlasts the video. Then
        # the last frame is the answer; a damaged file fails that too.
        with contextlib.suppress(OperationFailed):
            await run_ffmpeg_with_progress(ctx, argv, duration=None, on_percent=progress)
        if await _nonempty(out):
            return
        argv = thumbnail_argv(params, ctx.video, source, out, last_frame=True)
        await run_ffmpeg_with_progress(ctx, argv, duration=None, on_percent=progress)
        if not await _nonempty(out):
            raise OperationFailed(f"no video frame could be decoded at {params['time']} s")

    async def _sprite(
        self, ctx: JobContext, params: dict[str, Any], source: Path
    ) -> list[tuple[Path, str]]:
        duration = source_duration(ctx.video, ctx.settings)
        layout = sprite_layout(
            ctx.video,
            duration,
            float(params["sprite_interval"]),
            int(params["sprite_columns"]),
            int(params["sprite_width"]),
        )
        tile_dir = ctx.workdir / "tiles"
        await asyncio.to_thread(tile_dir.mkdir, parents=True, exist_ok=True)
        await run_ffmpeg_with_progress(
            ctx,
            tiles_argv(ctx.video, source, tile_dir, layout),
            duration=duration,
            on_percent=scaled(ctx.report_progress, 10, 85),
        )
        made = len(await asyncio.to_thread(lambda: list(tile_dir.glob("tile_*.png"))))
        if made == 0:
            raise OperationFailed("no video frames could be decoded for the sprite")
        # The grid and the cues follow the tiles actually made (a rounding
        # difference at the very end must not leave a cue on a blank cell).
        layout = sprite_layout(
            ctx.video, duration, layout.interval, layout.columns, layout.tile_width, tiles=made
        )
        sprite = ctx.workdir / SPRITE_NAME
        await run_ffmpeg_with_progress(
            ctx,
            sprite_argv(tile_dir, sprite, layout),
            duration=None,
            on_percent=scaled(ctx.report_progress, 85, 95),
        )
        if not await _nonempty(sprite):
            raise OperationFailed("the sprite sheet could not be assembled")
        storyboard = ctx.workdir / STORYBOARD_NAME
        await asyncio.to_thread(storyboard.write_text, storyboard_vtt(layout, duration), "utf-8")
        return [(sprite, SPRITE_NAME), (storyboard, STORYBOARD_NAME)]


async def _nonempty(path: Path) -> bool:
    def check() -> bool:
        return path.is_file() and path.stat().st_size > 0

    return await asyncio.to_thread(check)


OPERATION = ThumbnailOperation()
