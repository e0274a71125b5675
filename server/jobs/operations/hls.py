"""`hls`: adaptive HLS — a master playlist and one variant per ladder rendition.

Layout of the outputs (every URI in a playlist is relative, so the tree plays
from wherever it is served, e.g. under the path-token URLs of `links.py`)::

    hls/master.m3u8              lists 480p/index.m3u8, 720p/index.m3u8, ...
    hls/480p/index.m3u8          lists segment_00001.ts, segment_00002.ts, ...
    hls/480p/segment_00001.ts

One ffmpeg run, as for `transcode` (see there for the timings): the source
is decoded once and split, and each branch is encoded and muxed by its own
`-f hls` output. Keyframes are forced at every multiple of
`segment_seconds` with scene-cut keyframes off, so every rendition is cut at
the same instants and a player can switch between them at any boundary.

The master playlist is written here rather than by ffmpeg's
`-master_pl_name`: HLS wants BANDWIDTH to be the *peak* segment bitrate,
which only the finished segments tell (a VBV-capped encode still overshoots
its cap within a segment, and TS adds overhead). The CODECS string is read
from the stream itself, as fast presets make x264 drop below the profile
it was allowed.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import file_url, input_args
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.outputs import store_tree
from server.jobs.operations.params import read_params, validated_params
from server.jobs.operations.protocol import OperationFailed
from server.jobs.operations.renditions import (
    LadderParams,
    Rendition,
    Source,
    encoder_args,
    filter_graph,
    ladder_bytes,
    output_fps,
    plan,
    read_ladder_params,
    require_encoders,
)
from server.media.progress import scaled
from server.videos.model import Video

DEFAULT_SEGMENT_SECONDS = 4
MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 2, 10
MASTER = "master.m3u8"
VARIANT = "index.m3u8"
SEGMENT_PATTERN = "segment_%05d.ts"
OUTPUT_PREFIX = "hls/"
AAC_LC = "mp4a.40.2"
# Share of the progress bar for encoding; the rest is storing the tree.
_ENCODE_SHARE = 95.0
# The start of a segment is enough to find the first SPS.
_SPS_SEARCH_BYTES = 64 * 1024


# --- argv (pure) --------------------------------------------------------------


def keyframe_args(segment_seconds: int) -> list[str]:
    """A keyframe exactly at every segment boundary, and nowhere else by choice."""
    return [
        "-force_key_frames",
        f"expr:gte(t,n_forced*{segment_seconds})",
        # An IDR, not just an I-frame: each segment then decodes on its own.
        "-forced-idr",
        "1",
        # No scene-cut keyframes: the renditions' GOPs stay identical.
        "-sc_threshold",
        "0",
    ]


def hls_args(
    inputs: Sequence[str],
    renditions: Sequence[Rendition],
    *,
    preset: str,
    audio: bool,
    fps: float | None,
    segment_seconds: int,
    out_dir: Path,
) -> list[str]:
    """ffmpeg arguments writing `<out_dir>/<name>/index.m3u8` + segments per rendition."""
    args = [*inputs, "-filter_complex", filter_graph(renditions, fps)]
    for i, rendition in enumerate(renditions):
        variant_dir = out_dir / rendition.name
        args += encoder_args(
            i, rendition, preset=preset, audio=audio, video_extra=keyframe_args(segment_seconds)
        )
        args += [
            "-f",
            "hls",
            "-hls_time",
            str(segment_seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_flags",
            "independent_segments",
            "-hls_segment_type",
            "mpegts",
            "-start_number",
            "1",
            "-hls_segment_filename",
            _file_url(variant_dir / SEGMENT_PATTERN),
            _file_url(variant_dir / VARIANT),
        ]
    return args


def _file_url(path: Path) -> str:
    # ffmpeg expands "%" sequences in segment names; our paths have none.
    if "%" in str(path.absolute()).replace(SEGMENT_PATTERN, ""):
        raise OperationFailed("the work directory's path contains '%'")
    return file_url(path)


# --- playlists (pure) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True, slots=True)
class Variant:
    """What the master playlist says about one rendition."""

    uri: str  # relative to the master playlist
    width: int
    height: int
    peak_bps: int
    average_bps: int
    codecs: str
    fps: float | None


_EXTINF_RE = re.compile(r"^#EXTINF:(?P<duration>\d+(?:\.\d+)?),")
# What ffmpeg writes for SEGMENT_PATTERN: a bare file name, relative to the playlist.
_SEGMENT_URI_RE = re.compile(r"^segment_\d{5,}\.ts$")


def parse_media_playlist(text: str) -> list[Segment]:
    """The segments of a variant playlist; OperationFailed unless every URI is relative."""
    segments: list[Segment] = []
    duration: float | None = None
    for line in text.splitlines():
        line = line.strip()
        match = _EXTINF_RE.match(line)
        if match:
            duration = float(match["duration"])
        elif line and not line.startswith("#"):
            if duration is None or not _SEGMENT_URI_RE.match(line):
                raise OperationFailed(f"unexpected line in a variant playlist: {line[:80]!r}")
            segments.append(Segment(line, duration))
            duration = None
    if not segments:
        raise OperationFailed("a variant playlist has no segments")
    return segments


def bandwidth(segments: Sequence[tuple[float, int]], target: float) -> tuple[int, int]:
    """(peak, average) bits per second of (duration, bytes) segments.

    The peak is over segments, as HLS defines BANDWIDTH; a last segment
    shorter than half the target is measured together with the one before
    it, or a one-frame tail would claim a huge peak and keep players off
    the variant.
    """
    spans = [(d, size) for d, size in segments]
    if len(spans) > 1 and spans[-1][0] < target / 2:
        (d1, s1), (d2, s2) = spans[-2], spans[-1]
        spans[-2:] = [(d1 + d2, s1 + s2)]
    rates = [size * 8 / max(d, 0.001) for d, size in spans]
    total_seconds = sum(d for d, _ in spans)
    total_bits = sum(size * 8 for _, size in spans)
    average = total_bits / max(total_seconds, 0.001)
    return round(max(rates)), round(average)


def avc_codec(data: bytes) -> str | None:
    """RFC 6381 `avc1.PPCCLL` from the first H.264 SPS in an Annex B stream (TS segment).

    The three bytes after the SPS NAL header are profile_idc, the constraint
    flags and level_idc: exactly what the CODECS attribute carries. None if
    no SPS is found.
    """
    start = 0
    while (start := data.find(b"\x00\x00\x01", start)) != -1 and start + 7 <= len(data):
        header = data[start + 3]
        if header & 0x80 == 0 and header & 0x1F == 7:
            return "avc1." + data[start + 4 : start + 7].hex()
        start += 3
    return None


def master_playlist(variants: Sequence[Variant]) -> str:
    """The master playlist: one EXT-X-STREAM-INF per variant, smallest first.

    Players start with the first variant listed, then adapt; the smallest
    starts fastest.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: (v.height, v.width, v.peak_bps)):
        attributes = [
            f"BANDWIDTH={v.peak_bps}",
            f"AVERAGE-BANDWIDTH={v.average_bps}",
            f'CODECS="{v.codecs}"',
            f"RESOLUTION={v.width}x{v.height}",
        ]
        if v.fps:
            attributes.append(f"FRAME-RATE={v.fps:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), v.uri]
    return "\n".join(lines) + "\n"


# --- after ffmpeg: describe the variants (blocking, run in a thread) ----------


def describe_variant(
    out_dir: Path, rendition: Rendition, *, audio: bool, fps: float | None, target: float
) -> Variant:
    variant_dir = out_dir / rendition.name
    segments = parse_media_playlist((variant_dir / VARIANT).read_text("utf-8"))
    sizes = [(s.duration, (variant_dir / s.uri).stat().st_size) for s in segments]
    peak, average = bandwidth(sizes, target)
    with (variant_dir / segments[0].uri).open("rb") as f:
        video_codec = avc_codec(f.read(_SPS_SEARCH_BYTES))
    if video_codec is None:
        raise OperationFailed(f"no H.264 parameters in the {rendition.name} segments")
    return Variant(
        uri=f"{rendition.name}/{VARIANT}",
        width=rendition.width,
        height=rendition.height,
        peak_bps=peak,
        average_bps=average,
        codecs=f"{video_codec},{AAC_LC}" if audio else video_codec,
        fps=fps,
    )


def write_master(
    out_dir: Path,
    renditions: Sequence[Rendition],
    *,
    audio: bool,
    fps: float | None,
    target: float,
) -> None:
    variants = [
        describe_variant(out_dir, r, audio=audio, fps=fps, target=target) for r in renditions
    ]
    (out_dir / MASTER).write_text(master_playlist(variants), "utf-8")


# --- the operation --------------------------------------------------------------


class HlsParams(LadderParams):
    """Adaptive HLS: a master playlist and one variant per rendition, under hls/."""

    segment_seconds: Annotated[
        int,
        Field(
            ge=MIN_SEGMENT_SECONDS,
            le=MAX_SEGMENT_SECONDS,
            description="Length of each segment in seconds; players switch renditions "
            "between segments.",
        ),
    ] = DEFAULT_SEGMENT_SECONDS


class Hls:
    name = "hls"
    kinds = frozenset({"video"})
    summary = "Adaptive HLS: hls/master.m3u8 and one variant playlist with segments per rendition."
    param_models = MappingProxyType({"video": HlsParams})

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        p = read_params(HlsParams, raw, settings)
        return {
            **read_ladder_params(p, video, settings),
            "segment_seconds": p.segment_seconds,
        }

    def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int:
        # Segments at the ladder's caps, plus a few hundred bytes of playlist per segment.
        duration = float(video.metadata.get("duration") or 0)
        segments = math.ceil(duration / int(params["segment_seconds"])) + 1
        renditions = len(params["renditions"])
        return ladder_bytes(video, params["renditions"]) + segments * renditions * 256

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        params = validated_params(self, ctx)
        source = Source.of(ctx.video)
        renditions = plan(source, params["renditions"])
        await require_encoders(ctx.ffmpeg, audio=source.has_audio)
        segment_seconds = int(params["segment_seconds"])
        fps = output_fps(source, ctx.settings.max_output_fps)
        out_dir = ctx.workdir / "hls"
        for rendition in renditions:
            await asyncio.to_thread((out_dir / rendition.name).mkdir, parents=True, exist_ok=True)

        async with source_file(ctx) as path:
            args = hls_args(
                input_args(ctx.video, path),
                renditions,
                preset=params["preset"],
                audio=source.has_audio,
                fps=fps,
                segment_seconds=segment_seconds,
                out_dir=out_dir,
            )
            await run_ffmpeg_with_progress(
                ctx,
                args,
                duration=ctx.video.metadata.get("duration"),
                on_percent=scaled(ctx.report_progress, 0, _ENCODE_SHARE),
            )

        await asyncio.to_thread(
            write_master,
            out_dir,
            renditions,
            audio=source.has_audio,
            fps=fps or source.fps,
            target=segment_seconds,
        )
        outputs = await store_tree(ctx, out_dir, OUTPUT_PREFIX)
        ctx.report_progress(100.0)
        return outputs


OPERATION = Hls()
