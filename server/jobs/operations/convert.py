"""`convert`: the user's own resize / container / codec / quality / trim, to
`converted.<ext>`; for images a resize and format change.

Which encoders exist is asked of the ffmpeg build (server.media.encoders):
AV1 is offered only where libsvtav1 or libaom-av1 is present, and the
choice among encoders is made at run time on the instance that runs the job.
Presets favour speed (libx264 veryfast, VP9 realtime, SVT-AV1 preset 10):
this is a self-hosted server on ordinary CPUs.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import decimal, input_args
from server.jobs.operations.estimates import ASSUMED_FPS, bitrate_bytes, still_bytes
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.geometry import display_size, fit_size, source_fps
from server.jobs.operations.limits import (
    MAX_IMAGE_SIDE,
    MIN_OUTPUT_SIDE,
    check_pixels,
    source_duration,
)
from server.jobs.operations.outputs import store_file
from server.jobs.operations.params import (
    AtMostSetting,
    OneOf,
    OperationParams,
    check_at_least,
    check_at_most,
    check_span,
    invalid,
    read_params,
    validated_params,
)
from server.jobs.operations.protocol import OperationFailed
from server.media.binary import resolve_ffmpeg
from server.media.encoders import available_encoders, first_available, load_encoders
from server.media.progress import scaled
from server.videos.model import Video


@dataclass(frozen=True)
class Container:
    muxer: str
    content_type: str
    codecs: tuple[str, ...]  # video codecs it may hold, the default first
    audio_encoders: tuple[str, ...]  # by preference; empty: no audio
    faststart: bool = False  # moov atom up front, so playback starts before the download ends


@dataclass(frozen=True)
class Codec:
    encoders: tuple[str, ...]  # by preference
    crf_range: tuple[int, int]
    default_crf: int


CONTAINERS: dict[str, Container] = {
    "mp4": Container("mp4", "video/mp4", ("h264", "vp9", "av1"), ("aac",), faststart=True),
    "mov": Container("mov", "video/quicktime", ("h264",), ("aac",), faststart=True),
    "mkv": Container("matroska", "video/x-matroska", ("h264", "vp9", "av1"), ("aac",)),
    "webm": Container("webm", "video/webm", ("vp9", "av1"), ("libopus", "libvorbis")),
    "gif": Container("gif", "image/gif", (), ()),
}
CODECS: dict[str, Codec] = {
    "h264": Codec(("libx264",), (0, 51), 23),
    "vp9": Codec(("libvpx-vp9",), (0, 63), 32),
    # SVT-AV1 first: much faster than libaom at similar quality.
    "av1": Codec(("libsvtav1", "libaom-av1"), (1, 63), 35),
}
# format -> (encoder, content type, encoder arguments)
IMAGE_FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "jpg": ("mjpeg", "image/jpeg", ("-q:v", "2")),
    "png": ("png", "image/png", ()),
    "webp": ("libwebp", "image/webp", ("-quality", "85")),
}
_IMAGE_FORMAT_OF = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

OUTPUT_STEM = "converted"
MAX_SIDE = 8192  # H.264 level 6.2 and common decoders stop around here
MIN_BITRATE_KBPS = 50
MAX_BITRATE_KBPS = 100_000
MIN_FPS = 1.0
GIF_DEFAULT_FPS = 15.0
GIF_MAX_FPS = 30.0  # GIF delays are in 1/100 s and players slow anything faster
GIF_DEFAULT_MAX_WIDTH = 480
# palettegen sees every frame before paletteuse can start, so the graph holds
# the whole (scaled) GIF in memory as 4-byte pixels: this bounds it.
GIF_BUFFER_BYTES = 512 * 1024 * 1024
AUDIO_BITRATE = {"aac": "128k", "libopus": "96k", "libvorbis": "112k"}
ENCODE_SHARE = 95.0
# For the quota estimate: about what H.264 at CRF 23 spends on camera footage,
# and the highest of the AUDIO_BITRATE values.
CRF_BITS_PER_PIXEL = 0.1
ESTIMATE_AUDIO_KBPS = 128

_BITRATE_RE = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>[kKmM]?)")
_BITRATE_SYNTAX = 'must be kbps as an integer, or a string like "2M" or "500k"'
# The widest crf any codec takes; each codec's own range is checked after.
_CRF_RANGE = (
    min(c.crf_range[0] for c in CODECS.values()),
    max(c.crf_range[1] for c in CODECS.values()),
)


def _kbps(value: object) -> int:
    """`bitrate` as kbps: an integer (kbps) or a string like "2M", "500k", "1.5M"."""
    kbps: float
    if isinstance(value, int) and not isinstance(value, bool):
        kbps = value
    elif isinstance(value, str) and (m := _BITRATE_RE.fullmatch(value.strip())):
        kbps = float(m["value"]) * (1000 if m["unit"] in "mM" and m["unit"] else 1)
    else:
        raise PydanticCustomError("bitrate_syntax", _BITRATE_SYNTAX)
    if not MIN_BITRATE_KBPS <= kbps <= MAX_BITRATE_KBPS:
        raise PydanticCustomError(
            "bitrate_range", f"must be between {MIN_BITRATE_KBPS} and {MAX_BITRATE_KBPS} kbps"
        )
    return round(kbps)


_BITRATE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": MIN_BITRATE_KBPS, "maximum": MAX_BITRATE_KBPS},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?[kKmM]?\s*$"},
        {"type": "null"},
    ]
}


class ConvertParams(OperationParams):
    """A video resized, re-encoded, trimmed or turned into a GIF, as converted.<container>."""

    misplaced_hints: ClassVar[Mapping[str, str]] = {
        "format": "applies to images only; videos choose a container"
    }

    width: Annotated[
        int | None,
        Field(
            ge=MIN_OUTPUT_SIDE,
            le=MAX_SIDE,
            description="Output width (even, except for gif); with height alone the aspect "
            "ratio is kept. Default: the video's (gif: at most 480).",
        ),
    ] = None
    height: Annotated[
        int | None,
        Field(
            ge=MIN_OUTPUT_SIDE,
            le=MAX_SIDE,
            description="Output height (even, except for gif); with width alone the aspect "
            "ratio is kept. Default: the video's.",
        ),
    ] = None
    container: Annotated[
        str, OneOf(tuple(CONTAINERS)), Field(description="Container of the output.")
    ] = "mp4"
    video_codec: Annotated[
        Annotated[str, OneOf(tuple(CODECS))] | None,
        Field(
            description="Video codec; the container must hold it (not with gif). "
            "Default: the container's first (mp4, mov, mkv: h264; webm: vp9)."
        ),
    ] = None
    crf: Annotated[
        int | None,
        Field(
            ge=_CRF_RANGE[0],
            le=_CRF_RANGE[1],
            description="Constant quality, lower is better (not with bitrate or gif): "
            + "; ".join(f"{n} {c.crf_range[0]}-{c.crf_range[1]}" for n, c in CODECS.items())
            + ". Default: "
            + ", ".join(f"{n} {c.default_crf}" for n, c in CODECS.items())
            + ".",
        ),
    ] = None
    bitrate: Annotated[
        int | None,
        BeforeValidator(_kbps),
        WithJsonSchema(_BITRATE_SCHEMA),
        Field(
            description='Average video bitrate instead of crf: kbps, or a string like "2M" or '
            '"500k" (not with gif).'
        ),
    ] = None
    fps: Annotated[
        float | None,
        Field(
            ge=MIN_FPS,
            description="Output frame rate (gif: at most 30). Default: the video's, "
            "at most the server's limit (gif: 15).",
        ),
        AtMostSetting("max_output_fps"),
    ] = None
    audio: Annotated[bool, Field(description="Keep the audio (gif has none, so false there).")] = (
        True
    )
    start: Annotated[
        float, Field(ge=0, description="Second to start at; less than the duration.")
    ] = 0.0
    end: Annotated[
        float | None,
        Field(gt=0, description="Second to stop at, after start. Default: the end of the video."),
    ] = None

    def maximums_from_params(self) -> Mapping[str, float]:
        return {"fps": GIF_MAX_FPS} if self.container == "gif" else {}


class ConvertImageParams(OperationParams):
    """An image resized or in another format, as converted.<format>."""

    width: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_IMAGE_SIDE,
            description="Output width; with height alone the aspect ratio is kept. "
            "Default: the image's.",
        ),
    ] = None
    height: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_IMAGE_SIDE,
            description="Output height; with width alone the aspect ratio is kept. "
            "Default: the image's.",
        ),
    ] = None
    format: Annotated[
        Annotated[str, OneOf(tuple(IMAGE_FORMATS))] | None,
        Field(description="Image format of the output. Default: the image's own."),
    ] = None


PARAM_MODELS: Mapping[str, type[OperationParams]] = MappingProxyType(
    {"video": ConvertParams, "image": ConvertImageParams}
)


def _encoders(settings: Settings) -> frozenset[str]:
    return available_encoders(resolve_ffmpeg(settings.ffmpeg_path))


def parse_params(raw: Mapping[str, Any], video: Video, settings: Settings) -> dict[str, Any]:
    if video.kind == "image":
        image = read_params(ConvertImageParams, raw, settings, siblings=PARAM_MODELS)
        return _parse_image(image, video, settings)
    p = read_params(ConvertParams, raw, settings, siblings=PARAM_MODELS)
    return _parse_video(p, video, settings)


def _parse_image(p: ConvertImageParams, video: Video, settings: Settings) -> dict[str, Any]:
    fmt = p.format or _IMAGE_FORMAT_OF.get(video.content_type, "jpg")
    if IMAGE_FORMATS[fmt][0] not in _encoders(settings):
        raise invalid("format", f"this server's ffmpeg cannot write {fmt}")
    size = fit_size(display_size(video), p.width, p.height, even=False)
    check_pixels(size, settings, "height" if p.width is None and p.height is not None else "width")
    return {"width": p.width, "height": p.height, "format": fmt}


def _parse_video(p: ConvertParams, video: Video, settings: Settings) -> dict[str, Any]:
    duration = source_duration(video, settings)
    encoders = _encoders(settings)
    container = CONTAINERS[p.container]
    gif = p.container == "gif"
    given = p.model_fields_set

    codec = crf = bitrate = None
    if gif:
        for name in ("video_codec", "crf", "bitrate"):
            if name in given:
                raise invalid(name, "does not apply to gif")
        if "audio" in given and p.audio:
            raise invalid("audio", "gif has no audio")
        audio = False
    else:
        codec = p.video_codec or container.codecs[0]
        if codec not in container.codecs:
            raise invalid("video_codec", f"{p.container} holds only " + ", ".join(container.codecs))
        spec = CODECS[codec]
        if first_available(encoders, *spec.encoders) is None:
            raise invalid("video_codec", f"this server's ffmpeg has no {codec} encoder")
        bitrate = p.bitrate
        if bitrate is not None and "crf" in given:
            raise invalid("crf", "give either crf or bitrate, not both")
        if bitrate is None:
            crf = spec.default_crf if p.crf is None else p.crf
            check_at_least("crf", crf, spec.crf_range[0])
            check_at_most("crf", crf, spec.crf_range[1])
        audio = p.audio
        has_audio = video.metadata.get("audio_codec") is not None
        if audio and has_audio and first_available(encoders, *container.audio_encoders) is None:
            raise invalid("audio", f"this server's ffmpeg has no audio encoder for {p.container}")

    width, height = p.width, p.height
    if not gif:
        # 4:2:0 video halves the chroma planes: odd sizes cannot be encoded.
        for name, value in (("width", width), ("height", height)):
            if value is not None and value % 2:
                raise invalid(name, "must be an even number")
    source = display_size(video)
    if gif and width is None and height is None:
        # A full-size GIF of a video is huge and slow; default to a web-sized one.
        width = min(GIF_DEFAULT_MAX_WIDTH, source[0])
    size = output_size(source, width, height, even=not gif)
    size_field = "height" if width is None and height is not None else "width"
    check_pixels(size, settings, size_field)

    rate = source_fps(video)
    max_fps = min(GIF_MAX_FPS, settings.max_output_fps) if gif else settings.max_output_fps
    fps = p.fps  # at most max_fps when given: read_params checked it
    if fps is None and gif:
        fps = max(MIN_FPS, min(GIF_DEFAULT_FPS, rate or GIF_DEFAULT_FPS, max_fps))
    elif fps is None and rate is not None and rate > max_fps:
        fps = max_fps  # never more than the limit, even by default

    start, end = check_span(p.start, p.end, duration)
    if gif:
        assert fps is not None
        frames = math.ceil((end - start) * fps)
        buffered = frames * size[0] * size[1] * 4
        if buffered > GIF_BUFFER_BYTES:
            raise invalid(
                "end",
                f"a {size[0]}x{size[1]} GIF of {frames} frames is too big to make; "
                "shorten it with start/end, or lower fps or width",
            )
    return {
        "container": p.container,
        "video_codec": codec,
        "width": width,
        "height": height,
        "crf": crf,
        "bitrate": bitrate,
        "fps": fps,
        "audio": audio,
        "start": start,
        "end": end,
    }


def output_size(
    source: tuple[int, int], width: int | None, height: int | None, *, even: bool
) -> tuple[int, int]:
    """The encoded size: as asked (aspect kept if one side), else the source's,
    rounded down to even for 4:2:0 video (an odd-sized source cannot be encoded as is)."""
    w, h = fit_size(source, width, height, even=even)
    if even and width is None and height is None:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def output_name(params: Mapping[str, Any], video: Video) -> str:
    ext = params["format"] if video.kind == "image" else params["container"]
    return f"{OUTPUT_STEM}.{ext}"


def image_argv(params: Mapping[str, Any], video: Video, source: Path, out: Path) -> list[str]:
    """Resize/convert one image. Pure."""
    encoder, _, encoder_args = IMAGE_FORMATS[params["format"]]
    args = [*input_args(video, source), "-frames:v", "1"]
    if params.get("width") is not None or params.get("height") is not None:
        w, h = fit_size(display_size(video), params.get("width"), params.get("height"), even=False)
        args += ["-vf", f"scale={w}:{h}"]
    return [
        *args,
        "-c:v",
        encoder,
        *encoder_args,
        "-f",
        "image2",
        "-update",
        "1",
        "file:" + str(out),
    ]


def video_argv(
    params: Mapping[str, Any], video: Video, source: Path, out: Path, encoders: frozenset[str]
) -> list[str]:
    """The whole conversion in one ffmpeg run. Pure (`encoders`: what the build has)."""
    container = CONTAINERS[params["container"]]
    gif = params["container"] == "gif"
    start, end = float(params["start"]), float(params["end"])
    args: list[str] = []
    if start > 0:
        # Before -i: a fast keyframe seek, then exact decoding up to `start`.
        args += ["-ss", decimal(start)]
    args += [*input_args(video, source), "-t", decimal(end - start), "-map", "0:V:0"]
    audio = bool(params["audio"]) and video.metadata.get("audio_codec") is not None
    if audio:
        args += ["-map", "0:a:0"]

    display = display_size(video)
    size = output_size(display, params.get("width"), params.get("height"), even=not gif)
    filters: list[str] = []
    if params.get("fps") is not None:
        filters.append(f"fps={decimal(float(params['fps']))}")
    if size != display or gif:
        filters.append(f"scale={size[0]}:{size[1]}" + (":flags=lanczos" if gif else ""))
    if gif:
        # One graph: a palette made from the clip itself, then applied to it.
        chain = ",".join(filters)
        args += ["-vf", f"{chain},split[a][b];[a]palettegen[p];[b][p]paletteuse"]
        args += ["-c:v", "gif", "-loop", "0"]
    else:
        if filters:
            args += ["-vf", ",".join(filters)]
        args += _video_codec_args(params, encoders)
    if audio:
        encoder = first_available(encoders, *container.audio_encoders)
        if encoder is None:
            raise OperationFailed(f"this ffmpeg has no audio encoder for {params['container']}")
        args += ["-c:a", encoder, "-b:a", AUDIO_BITRATE.get(encoder, "128k")]
    else:
        args += ["-an"]
    args += ["-sn", "-dn"]
    if container.faststart:
        args += ["-movflags", "+faststart"]
    return [*args, "-f", container.muxer, "file:" + str(out)]


def _video_codec_args(params: Mapping[str, Any], encoders: frozenset[str]) -> list[str]:
    codec = str(params["video_codec"])
    encoder = first_available(encoders, *CODECS[codec].encoders)
    if encoder is None:
        raise OperationFailed(f"this ffmpeg has no {codec} encoder")
    crf, bitrate = params.get("crf"), params.get("bitrate")
    rate = ["-b:v", f"{int(bitrate)}k"] if bitrate is not None else ["-crf", str(int(crf or 0))]
    if encoder == "libx264":
        args = ["-c:v", "libx264", "-preset", "veryfast", *rate]
    elif encoder == "libvpx-vp9":
        args = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"]
        # libvpx's constant quality needs -b:v 0, or crf is only a floor.
        args += rate if bitrate is not None else [*rate, "-b:v", "0"]
    elif encoder == "libsvtav1":
        args = ["-c:v", "libsvtav1", "-preset", "10", *rate]
    else:
        args = ["-c:v", encoder, "-usage", "realtime", "-cpu-used", "8", "-row-mt", "1"]
        args += rate if bitrate is not None else [*rate, "-b:v", "0"]
    # 4:2:0 8-bit: what browsers and phones play, whatever the source was.
    return [*args, "-pix_fmt", "yuv420p"]


class ConvertOperation:
    name = "convert"
    kinds = frozenset({"video", "image"})
    summary = (
        "A video resized, re-encoded (H.264, VP9, AV1), trimmed or made a GIF, as "
        "converted.<container>; an image resized or in another format, as converted.<format>."
    )
    param_models = PARAM_MODELS

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return parse_params(raw, video, settings)

    def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int:
        source = display_size(video)
        if video.kind == "image":
            size = output_size(source, params["width"], params["height"], even=False)
            return still_bytes(size, params["format"])
        gif = params["container"] == "gif"
        size = output_size(source, params["width"], params["height"], even=not gif)
        span = float(params["end"]) - float(params["start"])
        fps = params["fps"] or source_fps(video) or ASSUMED_FPS
        if gif:
            return math.ceil(span * float(fps)) * still_bytes(size)
        audio = params["audio"] and video.metadata.get("audio_codec") is not None
        audio_kbps = ESTIMATE_AUDIO_KBPS if audio else 0
        if params["bitrate"] is not None:
            return bitrate_bytes(int(params["bitrate"]) + audio_kbps, span)
        # CRF has no bitrate: take a typical bits-per-pixel of web video at default CRF.
        video_kbps = size[0] * size[1] * float(fps) * CRF_BITS_PER_PIXEL / 1000
        return bitrate_bytes(video_kbps + audio_kbps, span)

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        params = validated_params(self, ctx)
        name = output_name(params, ctx.video)
        out = ctx.workdir / name
        async with source_file(ctx) as source:
            if ctx.video.kind == "image":
                argv = image_argv(params, ctx.video, source, out)
                duration = None
            else:
                encoders = await load_encoders(ctx.ffmpeg)
                argv = video_argv(params, ctx.video, source, out, encoders)
                duration = float(params["end"]) - float(params["start"])
            await run_ffmpeg_with_progress(
                ctx,
                argv,
                duration=duration,
                on_percent=scaled(ctx.report_progress, 0, ENCODE_SHARE),
            )
        if not await asyncio.to_thread(lambda: out.is_file() and out.stat().st_size > 0):
            raise OperationFailed("ffmpeg produced no output")
        content_type = (
            IMAGE_FORMATS[params["format"]][1]
            if ctx.video.kind == "image"
            else CONTAINERS[params["container"]].content_type
        )
        output = await store_file(ctx, out, name, content_type)
        ctx.report_progress(100.0)
        return [output]


OPERATION = ConvertOperation()
