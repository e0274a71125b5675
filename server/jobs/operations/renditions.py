"""The rendition ladder shared by `transcode` and `hls`, and its pure argv pieces.

A rung is named after its *display* height ("720p"). ffmpeg auto-rotates on
decode, so every size here is the size as shown: a portrait phone clip stored
as 1920x1080 with a 90° rotation is 1080x1920 to the filters, and its 720p
rendition is 406x720. Widths follow the source's aspect ratio, rounded to
even numbers (4:2:0 chroma is subsampled by two in both directions).

Never upscale: a rung is available only when it is not above the source's
display height; a source below the smallest rung gets one rendition at its
own (even) height, named after it ("360p").

Rate control is capped CRF: `-crf` sets the quality, `-maxrate`/`-bufsize`
(the VBV) bound the peak. A fixed average bitrate would spend as many bits on
a static screen recording as on sport, and on a 270x480 portrait rendition
as on 854x480; the cap is what players and the HLS BANDWIDTH care about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from config.settings import Settings
from server.jobs.operations.argv import decimal
from server.jobs.operations.estimates import bitrate_bytes
from server.jobs.operations.geometry import display_size, fit_size, source_fps
from server.jobs.operations.limits import check_source_pixels, source_duration
from server.jobs.operations.params import OneOf, OperationParams, invalid
from server.jobs.operations.protocol import OperationFailed
from server.media.encoders import load_encoders
from server.videos.model import Video


@dataclass(frozen=True, slots=True)
class Rung:
    name: str
    height: int
    maxrate_kbps: int  # VBV cap: the peak bitrate
    bufsize_kbps: int  # VBV buffer: 1.5 x maxrate, how far a second may overshoot the cap
    audio_kbps: int
    profile: str  # the highest H.264 profile x264 may use (it picks lower for fast presets)


# The usual web ladder (Apple's HLS authoring numbers, rounded). Main for
# 480p so that old phones and TVs that stop at Main play the lowest rung.
LADDER: tuple[Rung, ...] = (
    Rung("480p", 480, 1400, 2100, 96, "main"),
    Rung("720p", 720, 2800, 4200, 128, "high"),
    Rung("1080p", 1080, 5000, 7500, 128, "high"),
)
LADDER_NAMES: tuple[str, ...] = tuple(r.name for r in LADDER)

# x264 presets offered to users; slower ones than medium cost several times
# the CPU for a few percent of bits and would hog a shared worker.
PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
DEFAULT_PRESET = "veryfast"
CRF = 23  # x264's default quality; the VBV cap does the bounding
_MIN_SMALL_MAXRATE_KBPS = 200


@dataclass(frozen=True, slots=True)
class Source:
    """What the ladder needs to know about a video, as displayed."""

    width: int
    height: int
    fps: float | None
    has_audio: bool

    @classmethod
    def of(cls, video: Video) -> Source:
        width, height = display_size(video)
        return cls(
            width=width,
            height=height,
            fps=source_fps(video),
            has_audio=video.metadata.get("audio_codec") is not None,
        )


@dataclass(frozen=True, slots=True)
class Rendition:
    """One rung made concrete for one source."""

    name: str
    width: int
    height: int
    maxrate_kbps: int
    bufsize_kbps: int
    audio_kbps: int
    profile: str


def small_rung(height: int) -> Rung:
    """The single rung of a source below the ladder: its own height, made even."""
    even = max(2, height - height % 2)
    base = LADDER[0]
    # Linear in height rather than in pixels: small pictures need more bits
    # per pixel for the same look.
    maxrate = max(_MIN_SMALL_MAXRATE_KBPS, base.maxrate_kbps * even // base.height)
    return Rung(f"{even}p", even, maxrate, maxrate * 3 // 2, base.audio_kbps, base.profile)


def available_rungs(source: Source) -> tuple[Rung, ...]:
    """The rungs this source may have (never above its display height), smallest first."""
    rungs = tuple(r for r in LADDER if r.height <= source.height)
    return rungs or (small_rung(source.height),)


def default_renditions(source: Source) -> list[str]:
    return [r.name for r in available_rungs(source)]


def parse_renditions(value: object, source: Source) -> list[str]:
    """Validated rendition names in ladder order; `None` means the default."""
    if value is None:
        return default_renditions(source)
    available = {r.name: r for r in available_rungs(source)}
    # A small source's own rung ("360p") is accepted too, so that the params
    # parse_params returned parse again to themselves at run time.
    known = [*LADDER_NAMES, *(n for n in available if n not in LADDER_NAMES)]
    if not isinstance(value, list) or not value:
        raise invalid("renditions", "must be a non-empty list of " + ", ".join(known))
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in known:
            raise invalid("renditions", "each must be one of " + ", ".join(known))
        if item in names:
            raise invalid("renditions", f"{item} is listed twice")
        if item not in available:
            raise invalid(
                "renditions",
                f"{item} is above the video's height ({source.height}); renditions are "
                "never upscaled. Available: " + ", ".join(available),
            )
        names.append(item)
    return sorted(names, key=lambda n: available[n].height)


def plan(source: Source, names: Sequence[str]) -> list[Rendition]:
    """Concrete sizes and rates for validated `names` (ValueError on anything else)."""
    rungs = {r.name: r for r in available_rungs(source)}
    plan_: list[Rendition] = []
    for name in names:
        rung = rungs.get(name)
        if rung is None:
            raise ValueError(f"rendition {name!r} is not available for this source")
        width, height = fit_size((source.width, source.height), None, rung.height, even=True)
        plan_.append(
            Rendition(
                name=rung.name,
                width=width,
                height=height,
                maxrate_kbps=rung.maxrate_kbps,
                bufsize_kbps=rung.bufsize_kbps,
                audio_kbps=rung.audio_kbps,
                profile=rung.profile,
            )
        )
    return plan_


def ladder_bytes(video: Video, names: Sequence[str]) -> int:
    """Upper-ish size of `names` over the whole video: each rung at its VBV cap.

    Capped CRF usually stays well under the cap, so a job this refuses could
    not have fitted even in a lucky case only when the quota is far off.
    """
    source = Source.of(video)
    duration = float(video.metadata.get("duration") or 0)
    audio = source.has_audio
    return sum(
        bitrate_bytes(r.maxrate_kbps + (r.audio_kbps if audio else 0), duration)
        for r in plan(source, names)
    )


def output_fps(source: Source, max_fps: float) -> float | None:
    """The frame rate to convert to, or None to keep the source's (the usual case)."""
    if source.fps is not None and source.fps > max_fps:
        return max_fps
    return None


class LadderParams(OperationParams):
    """Params that transcode and hls share: which renditions, and how fast to encode."""

    renditions: Annotated[
        list[Annotated[str, WithJsonSchema({"type": "string", "enum": list(LADDER_NAMES)})]] | None,
        Field(
            min_length=1,
            description="Renditions to make, never above the video's height; a video below "
            "480p gets one at its own height, named after it (e.g. 360p). "
            "Default: every one up to the video's height.",
        ),
    ] = None
    preset: Annotated[
        str,
        OneOf(PRESETS),
        Field(description="x264 preset: faster ones make bigger files for the same quality."),
    ] = DEFAULT_PRESET


def read_ladder_params(p: LadderParams, video: Video, settings: Settings) -> dict[str, Any]:
    """Limits on the input, then the params both operations share: `renditions`, `preset`."""
    source_duration(video, settings)
    check_source_pixels(video, settings)
    return {
        "renditions": parse_renditions(p.renditions, Source.of(video)),
        "preset": p.preset,
    }


async def require_encoders(ffmpeg: str, *, audio: bool) -> None:
    """Fail with a clear message, not ffmpeg's, on a build without libx264 (or aac)."""
    encoders = await load_encoders(ffmpeg)
    needed = ["libx264", "aac"] if audio else ["libx264"]
    missing = [name for name in needed if name not in encoders]
    if missing:
        raise OperationFailed("this server's ffmpeg has no " + " or ".join(missing) + " encoder")


# --- argv pieces (pure) -------------------------------------------------------


def filter_graph(renditions: Sequence[Rendition], fps: float | None) -> str:
    """Decode once, split, scale each branch; outputs are labelled [v0], [v1], ...

    `0:V:0` (capital V) is the first real video stream, never cover art.
    """
    head = "[0:V:0]"
    if fps is not None:
        head += f"fps={decimal(fps)},"
    n = len(renditions)
    if n == 1:
        branches = [head]
    else:
        head += f"split={n}" + "".join(f"[s{i}]" for i in range(n))
        branches = [f"[s{i}]" for i in range(n)]
    chains = [
        # setsar=1: the size is already the display shape, the pixels are square.
        f"{branch}scale={r.width}:{r.height},setsar=1,format=yuv420p[v{i}]"
        for i, (branch, r) in enumerate(zip(branches, renditions, strict=True))
    ]
    if n == 1:
        return chains[0]
    return ";".join([head, *chains])


def encoder_args(
    index: int,
    rendition: Rendition,
    *,
    preset: str,
    audio: bool,
    video_extra: Sequence[str] = (),
) -> list[str]:
    """Mapping and codec options of output `index` (H.264 + AAC), before its muxer options."""
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is not allowed")
    args = [
        "-map",
        f"[v{index}]",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(CRF),
        "-maxrate",
        f"{rendition.maxrate_kbps}k",
        "-bufsize",
        f"{rendition.bufsize_kbps}k",
        "-profile:v",
        rendition.profile,
        "-pix_fmt",
        "yuv420p",
        *video_extra,
    ]
    if audio:
        # Stereo AAC-LC plays everywhere; surround sources are downmixed.
        args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{rendition.audio_kbps}k", "-ac", "2"]
    # The source's global tags (a phone's GPS position, its model) stay private.
    args += ["-map_metadata", "-1", "-map_chapters", "-1"]
    return args
