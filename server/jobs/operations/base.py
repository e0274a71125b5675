"""The contract every operation fulfils, and the helpers they share."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiofiles

from config.settings import Settings
from server.db.videos import Video
from server.errors import BadRequest
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.media.probe import error_reason
from server.media.process import FfmpegResult, run_ffmpeg
from server.media.progress import ProgressParser
from server.media.sniff import ALL_TYPES

COPY_CHUNK = 1024 * 1024


class OperationFailed(Exception):
    """The operation could not produce its outputs; the message is shown to the user."""


class Operation(Protocol):
    name: str
    kinds: frozenset[str]  # which sources it applies to: "video", "image"

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        """Validated params with defaults filled in (JSON-able); BadRequest names the field."""
        ...

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        """Do the work; store outputs under ctx.output_prefix; return them."""
        ...


def invalid(field: str, message: str) -> BadRequest:
    return BadRequest(f"params.{field}: {message}", code="invalid_params", field=f"params.{field}")


def demuxer_for(content_type: str) -> str:
    for t in ALL_TYPES:
        if t.content_type == content_type:
            return t.demuxer
    raise OperationFailed(f"unsupported source type {content_type}")


def input_args(video: Video, path: Path) -> list[str]:
    """Safe input arguments: protocols restricted, demuxer pinned, path made by us."""
    return [
        "-protocol_whitelist",
        "file,pipe",
        "-f",
        demuxer_for(video.content_type),
        "-i",
        "file:" + str(path.absolute()),
    ]


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


def guess_content_type(name: str) -> str:
    overrides = {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".m4s": "video/iso.segment",
        ".vtt": "text/vtt",
        ".mkv": "video/x-matroska",
        ".webp": "image/webp",
    }
    suffix = Path(name).suffix.lower()
    return overrides.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


async def store_file(
    ctx: JobContext, path: Path, name: str, content_type: str | None = None
) -> OutputFile:
    """Stream a local file into storage as output `name` (never whole in memory)."""
    key = ctx.output_key(name)
    content_type = content_type or guess_content_type(name)
    size = 0
    async with ctx.storage.writer(key, content_type) as writer, aiofiles.open(path, "rb") as f:
        while chunk := await f.read(COPY_CHUNK):
            size += len(chunk)
            await writer.write(chunk)
            ctx.touch()
        await writer.commit()
    return OutputFile(name=name, storage_key=key, size=size, content_type=content_type)


async def store_tree(ctx: JobContext, root: Path, prefix: str) -> list[OutputFile]:
    """Store every file under `root` as `prefix/<relative path>`, in a stable order."""
    outputs = []
    files = await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))
    for path in files:
        outputs.append(await store_file(ctx, path, prefix + path.relative_to(root).as_posix()))
    return outputs
