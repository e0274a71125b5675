"""`frames`: extract frames of a video into one ZIP, `frames.zip`.

ffmpeg writes `frame_000001.jpg`, ... into the job's scratch directory while
this task moves each finished file into a ZIP that streams straight into
storage (see zipstream) and deletes it. Neither the archive nor the frames
are ever held in memory, the scratch disk holds a few frames at a time, and
the upload overlaps the decoding. Progress: extraction is 0-90 % (ffmpeg's
out_time over the chosen span), the frames left when ffmpeg exits 90-100 %.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import decimal, input_args
from server.jobs.operations.estimates import ASSUMED_FPS, still_bytes
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.geometry import display_size, fit_size, source_fps
from server.jobs.operations.limits import MIN_OUTPUT_SIDE, check_pixels, source_duration
from server.jobs.operations.params import (
    AtMostSetting,
    OneOf,
    OperationParams,
    check_at_most,
    check_span,
    invalid,
    read_params,
    validated_params,
)
from server.jobs.operations.protocol import OperationFailed
from server.jobs.operations.zipstream import ZipStream
from server.media.progress import scaled
from server.videos.model import Video

ZIP_NAME = "frames.zip"
FORMATS = ("jpg", "png")
MAX_FPS = 30.0
# One frame per ~17 minutes is the slowest rate worth asking for; below it the
# float would need an exponent, which ffmpeg's rate parser does not take.
MIN_FPS = 0.001
MAX_EVERY_N_FRAMES = 1_000_000
EXTRACT_SHARE = 90.0  # percent of the job spent in ffmpeg; the rest is zipping
# How often finished frames are moved from the scratch directory into the ZIP.
PACK_INTERVAL_SECONDS = 0.25
_FRAME_NAME = re.compile(r"frame_\d{6,}\.(?:jpg|png)")
ZIP_ENTRY_OVERHEAD = 128


class FramesParams(OperationParams):
    """Frames of a video as image files in one ZIP, `frames.zip`."""

    fps: Annotated[
        float,
        Field(ge=MIN_FPS, le=MAX_FPS, description="Frames per second to extract."),
        AtMostSetting("max_output_fps"),
    ] = 1.0
    every_n_frames: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_EVERY_N_FRAMES,
            description="Instead of fps: every n-th frame of the source (not with fps).",
        ),
    ] = None
    format: Annotated[str, OneOf(FORMATS), Field(description="Image format of the frames.")] = "jpg"
    width: Annotated[
        int | None,
        Field(
            ge=MIN_OUTPUT_SIDE,
            multiple_of=2,
            description="Width of the frames, at most the video's; the height keeps the "
            "aspect ratio. Default: the video's size.",
        ),
    ] = None
    start: Annotated[
        float, Field(ge=0, description="Second to start at; less than the duration.")
    ] = 0.0
    end: Annotated[
        float | None,
        Field(gt=0, description="Second to stop at, after start. Default: the end of the video."),
    ] = None


def parse_params(raw: Mapping[str, Any], video: Video, settings: Settings) -> dict[str, Any]:
    p = read_params(FramesParams, raw, settings)
    duration = source_duration(video, settings)

    every_n = p.every_n_frames
    if every_n is not None and "fps" in p.model_fields_set:
        raise invalid("every_n_frames", "give either fps or every_n_frames, not both")
    fps = p.fps if every_n is None else None

    source_w, _ = size = display_size(video)
    check_at_most("width", p.width, max(MIN_OUTPUT_SIDE, source_w))  # no upscaling
    check_pixels(fit_size(size, p.width, None, even=True), settings, "width")
    start, end = check_span(p.start, p.end, duration)

    expected = expected_frames(end - start, fps, every_n, source_fps(video), settings)
    if expected > settings.max_frames_per_zip:
        raise invalid(
            "fps" if fps is not None else "every_n_frames",
            f"would extract about {expected} frames; at most {settings.max_frames_per_zip} "
            "per job (lower the rate or narrow start/end)",
        )
    return {
        "fps": fps,
        "every_n_frames": every_n,
        "format": p.format,
        "width": p.width,
        "start": start,
        "end": end,
    }


def expected_frames(
    span: float, fps: float | None, every_n: int | None, rate: float | None, settings: Settings
) -> int:
    """An upper bound of the frames a run will write, for the limit check."""
    if fps is not None:
        # ffmpeg's fps filter rounds to the nearest output frame; ceil never undercounts.
        return max(1, math.ceil(span * fps))
    assert every_n is not None
    # An unknown source rate is taken as the highest allowed: over- not under-estimate.
    source_frames = math.ceil(span * (rate or settings.max_output_fps))
    return max(1, math.ceil(source_frames / every_n))


def frames_argv(
    params: Mapping[str, Any], video: Video, source: Path, out_dir: Path, *, max_frames: int
) -> list[str]:
    """ffmpeg arguments (after the binary and progress flags) for validated `params`. Pure."""
    start, end = float(params["start"]), float(params["end"])
    args: list[str] = []
    if start > 0:
        # Before -i: a fast keyframe seek, then exact decoding up to `start`.
        args += ["-ss", decimal(start)]
    args += input_args(video, source)
    args += ["-t", decimal(end - start), "-map", "0:V:0"]

    filters: list[str] = []
    if params.get("every_n_frames") is not None:
        # "\," escapes the comma for the filtergraph parser (there is no shell).
        filters.append(f"select=not(mod(n\\,{int(params['every_n_frames'])}))")
    else:
        filters.append(f"fps={decimal(float(params['fps']))}")
    if params.get("width") is not None:
        width, height = fit_size(display_size(video), int(params["width"]), None, even=True)
        filters.append(f"scale={width}:{height}")
    args += ["-vf", ",".join(filters)]

    # vfr: the image2 muxer would otherwise duplicate frames to keep a constant
    # rate, undoing select. -frames:v backs up the limit checked in parse_params.
    args += ["-fps_mode", "vfr", "-frames:v", str(max_frames)]
    if params["format"] == "png":
        args += ["-c:v", "png"]
    else:
        args += ["-c:v", "mjpeg", "-q:v", "2"]
    ext = "png" if params["format"] == "png" else "jpg"
    args += ["-f", "image2", "-start_number", "1", "file:" + str(out_dir / f"frame_%06d.{ext}")]
    return args


class FramesOperation:
    name = "frames"
    kinds = frozenset({"video"})
    summary = "Frames of a video as JPEG or PNG files in one ZIP, frames.zip."
    param_models = MappingProxyType({"video": FramesParams})

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return parse_params(raw, video, settings)

    def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int:
        span = float(params["end"]) - float(params["start"])
        rate = source_fps(video) or ASSUMED_FPS
        if params["fps"] is not None:
            frames = math.ceil(span * float(params["fps"]))
        else:
            frames = math.ceil(span * rate / int(params["every_n_frames"]))
        width = params["width"]
        size = fit_size(display_size(video), int(width) if width else None, None, even=True)
        # Each ZIP entry adds its local header and central-directory record.
        return max(1, frames) * (still_bytes(size, params["format"]) + ZIP_ENTRY_OVERHEAD)

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        params = validated_params(self, ctx)
        start, end = float(params["start"]), float(params["end"])
        out_dir = ctx.workdir / "frames"
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        key = ctx.output_key(ZIP_NAME)
        # The writer is aborted on any way out but the commit: a failed or
        # cancelled job leaves no partial frames.zip behind.
        async with source_file(ctx) as source, ctx.storage.writer(key, "application/zip") as writer:
            packer = _FramePacker(ctx, ZipStream(writer.write), out_dir)
            argv = frames_argv(
                params, ctx.video, source, out_dir, max_frames=ctx.settings.max_frames_per_zip
            )
            extraction = asyncio.create_task(
                run_ffmpeg_with_progress(
                    ctx,
                    argv,
                    duration=end - start,
                    on_percent=scaled(ctx.report_progress, 0, EXTRACT_SHARE),
                )
            )
            try:
                # Zip (and delete) frames while ffmpeg makes more: scratch disk
                # stays at a few frames, and the upload overlaps the decoding.
                while not extraction.done():
                    await asyncio.wait([extraction], timeout=PACK_INTERVAL_SECONDS)
                    await packer.pack(final=False)
            finally:
                if not extraction.done():
                    extraction.cancel()  # run_ffmpeg kills and reaps ffmpeg
                    await asyncio.wait([extraction])
            try:
                extraction.result()
            except OperationFailed as exc:
                # ffmpeg also fails when nothing at all decodes in the span
                # (e.g. the audio outlasts the video): say that plainly.
                if packer.count == 0 and not await _frame_files(out_dir):
                    raise _no_frames(start, end, str(exc)) from exc
                raise
            await packer.pack(final=True)
            if packer.count == 0:
                raise _no_frames(start, end)
            await packer.archive.finish()
            info = await writer.commit()
        ctx.report_progress(100.0)
        return [
            OutputFile(
                name=ZIP_NAME, storage_key=key, size=info.size, content_type="application/zip"
            )
        ]


class _FramePacker:
    """Moves finished frame files from the scratch directory into the archive."""

    def __init__(self, ctx: JobContext, archive: ZipStream, out_dir: Path) -> None:
        self.ctx = ctx
        self.archive = archive
        self.out_dir = out_dir
        self.count = 0

    async def pack(self, *, final: bool) -> None:
        files = await _frame_files(self.out_dir)
        on_bytes = None
        if final:
            # What is left after ffmpeg exits is zipped as the last 90-100 %.
            on_bytes = self._progress(sum(await asyncio.to_thread(_sizes, files)))
        else:
            # image2 writes and closes one file before opening the next, so
            # all but the newest are complete while ffmpeg still runs.
            files = files[:-1]
        for path in files:
            await self.archive.add_file(path.name, path, on_bytes=on_bytes)
            await asyncio.to_thread(path.unlink)
            self.count += 1
            self.ctx.touch()

    def _progress(self, total: int) -> Callable[[int], None]:
        done = 0

        def on_bytes(count: int) -> None:
            nonlocal done
            done += count
            share = (100 - EXTRACT_SHARE) * done / max(1, total)
            # 100 only once the object is committed and visible.
            self.ctx.report_progress(min(99.9, EXTRACT_SHARE + share))

        return on_bytes


async def _frame_files(out_dir: Path) -> list[Path]:
    """Frame files in frame order (numerically: names outgrow six digits past 999,999)."""

    def listing() -> list[Path]:
        found = [p for p in out_dir.iterdir() if _FRAME_NAME.fullmatch(p.name)]
        return sorted(found, key=lambda p: int(p.name[6:].split(".")[0]))

    return await asyncio.to_thread(listing)


def _sizes(files: list[Path]) -> list[int]:
    return [f.stat().st_size for f in files]


def _no_frames(start: float, end: float, detail: str = "") -> OperationFailed:
    message = (
        "no frames were extracted: no video frame decodes between "
        f"{decimal(start)} s and {decimal(end)} s"
    )
    return OperationFailed(message + (f" ({detail})" if detail else ""))


OPERATION = FramesOperation()
