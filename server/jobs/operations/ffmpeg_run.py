"""Running ffmpeg for a job: the source as a local file, progress reported as it goes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from server.jobs.context import JobContext
from server.jobs.operations.protocol import OperationFailed
from server.media.probe import error_reason
from server.media.process import FfmpegResult, run_ffmpeg
from server.media.progress import ProgressParser


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

    argv = [ctx.ffmpeg, "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", *args]
    result = await run_ffmpeg(
        argv,
        # The runner enforces the job's own wall-clock limit; this is a backstop.
        timeout=ctx.settings.job_timeout_max_seconds,
        on_stdout=on_stdout,
    )
    if not result.ok:
        raise OperationFailed(
            "ffmpeg failed: " + error_reason(result.stderr_tail, hide=(str(ctx.workdir),))
        )
    return result
