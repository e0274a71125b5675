"""The contract every operation fulfils, and the helpers they share."""

from __future__ import annotations

import asyncio
import math
import mimetypes
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiofiles

from config.settings import Settings
from server.db.videos import Video
from server.errors import BadRequest
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.media.pixels import limit_input_pixels, refused_picture_reason
from server.media.probe import error_reason
from server.media.process import FfmpegResult, run_ffmpeg
from server.media.progress import ProgressParser
from server.media.sandbox import ffmpeg_input_paths
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

    # Optional, so operations without it (tests' fakes) still work:
    #     def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int
    # A rough size of the outputs for validated `params`, used to refuse a job
    # that could not fit in its owner's quota. Read it with `estimated_output_bytes`.


# --- output size estimates, for the quota check at job creation ---------------

# Rough bytes per pixel of a still at the quality the operations use (JPEG
# q 2-3 on camera footage lands around 0.2-0.4; PNG about twice that).
JPEG_BYTES_PER_PIXEL = 0.3
PNG_BYTES_PER_PIXEL = 0.6
# Container overhead on top of the streams' bitrates (MP4/TS/fMP4 headers, index).
MUX_OVERHEAD = 1.05


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


# --- params and limits, shared by the operations' parse_params ---------------

# Unknown names are echoed back in the error; a client bug should not make it huge.
_MAX_ECHOED_NAME = 40


class ParamReader:
    """Reads one operation's raw params, one validated field at a time.

    Every read fills the default or raises `invalid(field, ...)`. `None`
    counts as "not given", so the dict a parse_params returns (defaults
    filled, unused options None) parses again to itself: the runner can
    re-validate stored params at run time without special cases.
    """

    def __init__(
        self, raw: object, allowed: Iterable[str], *, misplaced: Mapping[str, str] | None = None
    ) -> None:
        """`misplaced`: names that exist elsewhere (another source kind), with the
        message to give instead of "unknown parameter"."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise BadRequest("params must be an object", code="invalid_params", field="params")
        names = sorted(allowed)
        for key in raw:
            if misplaced and key in misplaced:
                raise invalid(key, misplaced[key])
            if key not in names:
                raise invalid(
                    str(key)[:_MAX_ECHOED_NAME],
                    "unknown parameter; expected one of " + ", ".join(names),
                )
        self._raw: Mapping[str, Any] = raw

    def given(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def value(self, name: str) -> Any:
        """The raw value (None if not given), for a field with a syntax of its own."""
        return self._raw.get(name)

    def number(
        self,
        name: str,
        default: float | None,
        *,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self._raw.get(name)
        if value is None:
            return default
        # bool is an int subclass: `true` must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(name, "must be a number")
        if not math.isfinite(value):
            raise invalid(name, "must be a finite number")
        value = float(value)
        if minimum is not None and value < minimum:
            raise invalid(name, f"must be at least {decimal(minimum)}")
        if above is not None and value <= above:
            raise invalid(name, f"must be greater than {decimal(above)}")
        if maximum is not None and value > maximum:
            raise invalid(name, f"must be at most {decimal(maximum)}")
        return value

    def integer(
        self, name: str, default: int | None, *, minimum: int, maximum: int, even: bool = False
    ) -> int | None:
        value = self._raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "must be an integer")
        if value < minimum:
            raise invalid(name, f"must be at least {minimum}")
        if value > maximum:
            raise invalid(name, f"must be at most {maximum}")
        if even and value % 2:
            # 4:2:0 video halves the chroma planes: odd sizes cannot be encoded.
            raise invalid(name, "must be an even number")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid(name, "must be true or false")
        return value

    def choice(self, name: str, options: Iterable[str], default: str) -> str:
        value = self._raw.get(name)
        if value is None:
            return default
        allowed = list(options)
        if not isinstance(value, str) or value not in allowed:
            raise invalid(name, "must be one of " + ", ".join(allowed))
        return value

    def span(self, duration: float) -> tuple[float, float]:
        """`start`/`end` seconds: 0 <= start < end <= duration; defaults 0 and duration."""
        start = self.number("start", 0.0, minimum=0.0)
        assert start is not None
        if start >= duration:
            raise invalid("start", f"must be less than the duration ({decimal(duration)} s)")
        end = self.number("end", duration, above=start)
        assert end is not None
        if end > duration:
            raise invalid("end", f"must be at most the duration ({decimal(duration)} s)")
        return start, end


def decimal(value: float) -> str:
    """A number as ffmpeg and people read it: plain decimal, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


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


def display_size(video: Video) -> tuple[int, int]:
    """Width and height as shown: ffmpeg auto-rotates, so filters see these."""
    width, height = int(video.metadata["width"]), int(video.metadata["height"])
    if video.metadata.get("rotation") in (90, 270):
        return height, width
    return width, height


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


def check_pixels(size: tuple[int, int], settings: Settings, field: str) -> None:
    width, height = size
    if width * height > settings.max_pixels:
        raise invalid(
            field,
            f"the output would be {width}x{height}, more than the "
            f"{settings.max_pixels} pixels allowed",
        )


def validated_params(op: Operation, ctx: JobContext) -> dict[str, Any]:
    """The job's params validated again at run time (limits may have changed since)."""
    try:
        return op.parse_params(ctx.job.params, ctx.video, ctx.settings)
    except BadRequest as exc:
        raise OperationFailed(exc.message) from exc
