"""Running ffmpeg for a job: the source as a local file, progress reported as it goes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from server.jobs.context import JobContext
from server.jobs.operations.protocol import OperationFailed
from server.media.pixels import limit_input_pixels, refused_picture_reason
from server.media.probe import error_reason
from server.media.process import FfmpegResult, run_ffmpeg
from server.media.progress import ProgressParser
from server.media.sandbox import ffmpeg_input_paths


@asynccontextmanager
async def source_file(ctx: JobContext) -> AsyncIterator[Path]:
    """The source as a local path (S3 sources are streamed to a scratch file)."""
    async with ctx.storage.local_path(ctx.video.storage_key) as path:
        yield path


async def run_ffmpeg_with_progress(
    ctx: JobContext,
    args: list[str],
    *,
    duration: float | None,
    on_percent: Callable[[float], None] | None = None,
) -> FfmpegResult:
    """Run `ffmpeg <args>` reporting progress; OperationFailed on a non-zero exit."""
    parser = ProgressParser(duration, on_percent or ctx.report_progress)

    def on_stdout(chunk: bytes) -> None:
        ctx.touch()
        parser.feed(chunk)

    # Every input's decoder refuses pictures over the limit, also ones a stream
    # switches to after the part the probe saw.
    args = limit_input_pixels(args, ctx.settings.max_pixels)
    argv = [ctx.ffmpeg, "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", *args]
    # Inputs are the `-i file:` paths (the source, or files of the scratch
    # directory); everything ffmpeg writes goes into the scratch directory.
    confined = ctx.sandbox.wrap(argv, read=ffmpeg_input_paths(args), write=[ctx.workdir])
    result = await run_ffmpeg(
        confined,
        # The runner enforces the job's own wall-clock limit; this is a backstop.
        timeout=ctx.settings.job_timeout_max_seconds,
        on_stdout=on_stdout,
    )
    if not result.ok:
        reason = refused_picture_reason(
            result.stderr_head + result.stderr_tail, ctx.settings.max_pixels
        ) or error_reason(result.stderr_tail, hide=(str(ctx.workdir),))
        raise OperationFailed("ffmpeg failed: " + reason)
    return result
