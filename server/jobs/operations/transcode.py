"""`transcode`: H.264/AAC MP4 renditions of the ladder, `480p.mp4`, `720p.mp4`, ...

All renditions come out of ONE ffmpeg run: the source is decoded once, a
`split` filter feeds one scaler and one x264 per rendition, and each encoder
writes its own MP4. Measured on 2 cores with a 10 s 1080p30 source and the
three rungs (veryfast), on ffmpeg 9.0 and Debian's 5.1 alike: one run takes
6.6 s wall / 11.9 s CPU, three sequential runs 7.5-7.9 s / 13.0 s. The
decode is paid once and the encoders fill each other's stalls; there is
also one progress stream and one process to time out or cancel. The price
is memory, all encoders being alive at once: ~480 MB peak RSS against
~310 MB for the 1080p run alone.

`-movflags +faststart` moves the index (moov) before the media data so a
browser starts playing, and seeks, before it has the whole file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import file_url, input_args
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.outputs import store_file
from server.jobs.operations.params import read_params, validated_params
from server.jobs.operations.protocol import OperationFailed
from server.jobs.operations.renditions import (
    LADDER_NAMES,
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

# Share of the progress bar for encoding; the rest is storing the outputs.
_ENCODE_SHARE = 95.0


def transcode_args(
    inputs: Sequence[str],
    renditions: Sequence[Rendition],
    *,
    preset: str,
    audio: bool,
    fps: float | None,
    out_dir: Path,
) -> list[str]:
    """ffmpeg arguments (after the global ones) writing `<name>.mp4` per rendition."""
    args = [*inputs, "-filter_complex", filter_graph(renditions, fps)]
    for i, rendition in enumerate(renditions):
        args += encoder_args(i, rendition, preset=preset, audio=audio)
        args += [
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            file_url(out_dir / output_name(rendition)),
        ]
    return args


def output_name(rendition: Rendition) -> str:
    return f"{rendition.name}.mp4"


class TranscodeParams(LadderParams):
    """H.264/AAC MP4 renditions of the ladder, <rendition>.mp4 each."""


class Transcode:
    name = "transcode"
    kinds = frozenset({"video"})
    summary = f"H.264/AAC MP4 renditions ({', '.join(LADDER_NAMES)}), <rendition>.mp4 each."
    param_models = MappingProxyType({"video": TranscodeParams})

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return read_ladder_params(read_params(TranscodeParams, raw, settings), video, settings)

    def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int:
        return ladder_bytes(video, params["renditions"])

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        params = validated_params(self, ctx)
        source = Source.of(ctx.video)
        renditions = plan(source, params["renditions"])
        await require_encoders(ctx.ffmpeg, audio=source.has_audio)
        out_dir = ctx.workdir / "transcode"
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)

        async with source_file(ctx) as path:
            args = transcode_args(
                input_args(ctx.video, path),
                renditions,
                preset=params["preset"],
                audio=source.has_audio,
                fps=output_fps(source, ctx.settings.max_output_fps),
                out_dir=out_dir,
            )
            await run_ffmpeg_with_progress(
                ctx,
                args,
                duration=ctx.video.metadata.get("duration"),
                on_percent=scaled(ctx.report_progress, 0, _ENCODE_SHARE),
            )

        outputs = []
        for i, rendition in enumerate(renditions, start=1):
            path = out_dir / output_name(rendition)
            if not path.is_file():
                raise OperationFailed(f"ffmpeg wrote no {rendition.name} rendition")
            outputs.append(await store_file(ctx, path, output_name(rendition), "video/mp4"))
            ctx.report_progress(_ENCODE_SHARE + (100 - _ENCODE_SHARE) * i / len(renditions))
        return outputs


OPERATION = Transcode()
