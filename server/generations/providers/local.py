"""The `local` provider: a real video made offline with ffmpeg, always available.

From a reference image it pans and zooms over it (`zoompan`); without one it
animates one of ffmpeg's procedural sources (`testsrc2`, `mandelbrot`,
`cellauto`, `gradients`, picked by the seed, else by the prompt). The prompt
is drawn on it with `drawtext`, read from a file in the scratch directory
(`textfile=`, `expansion=none`): the user's text is never part of the filter
graph. The lavfi sources are built only from validated numbers and fixed
names. Argument building is pure (`local_argv`, `frame_size`) and
unit-tested; running goes through the job's sandboxed ffmpeg helper.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.generations.providers.base import GenerationSpec, ProviderInfo, credits_for

NAME = "local"
MODEL = "ffmpeg-procedural"
FPS = 24
RESOLUTIONS = ("360p", "480p", "720p", "1080p")
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
PATTERNS = ("testsrc2", "mandelbrot", "cellauto", "gradients")
# Fonts tried when no font file is configured (Debian, Alpine, macOS).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
)
MAX_TEXT_LINES = 4


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """(width, height): the resolution names the short side; both even (yuv420p)."""
    short = int(resolution.removesuffix("p"))
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return _even(short * w / h), short
    return short, _even(short * h / w)


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def pick_pattern(spec: GenerationSpec) -> str:
    """The same request gives the same video: the seed, else a hash of the prompt."""
    if spec.seed is not None:
        return PATTERNS[spec.seed % len(PATTERNS)]
    digest = hashlib.sha256(spec.prompt.encode()).digest()
    return PATTERNS[digest[0] % len(PATTERNS)]


def wrap_prompt(prompt: str, width: int, font_size: int) -> str:
    """The prompt as at most a few lines that fit the frame (drawtext does not wrap)."""
    per_line = max(8, int(width * 0.9 / (font_size * 0.6)))
    lines = textwrap.wrap(" ".join(prompt.split()), per_line)
    if len(lines) > MAX_TEXT_LINES:
        lines = lines[:MAX_TEXT_LINES]
        lines[-1] = lines[-1][: per_line - 1].rstrip() + "…"
    return "\n".join(lines)


def _escape(value: str) -> str:
    """A filter option value inside a filter graph: escaped at both levels."""
    for ch in "\\':":
        value = value.replace(ch, "\\" + ch)
    for ch in "\\'[],;":
        value = value.replace(ch, "\\" + ch)
    return value


@dataclass(frozen=True)
class LocalPlan:
    width: int
    height: int
    duration: int
    pattern: str | None  # None: from the image
    seed: int


def plan(spec: GenerationSpec) -> LocalPlan:
    width, height = frame_size(spec.resolution, spec.aspect_ratio)
    seed = spec.seed if spec.seed is not None else 0
    pattern = None if spec.image is not None else pick_pattern(spec)
    return LocalPlan(width, height, spec.duration_seconds, pattern, seed)


def source_filter(p: LocalPlan) -> str:
    size = f"size={p.width}x{p.height}:rate={FPS}"
    if p.pattern == "cellauto":
        return f"cellauto={size}:rule={30 + p.seed % 100}:random_seed={p.seed % 2**31}"
    if p.pattern == "gradients":
        return f"gradients={size}:seed={p.seed % 2**31}:speed=0.02"
    if p.pattern == "mandelbrot":
        # Rendered at half size and scaled up: the fractal costs per pixel (~4x faster).
        half = f"size={_even(p.width / 2)}x{_even(p.height / 2)}:rate={FPS}"
        return f"mandelbrot={half}"
    return f"testsrc2={size}"


def local_argv(
    p: LocalPlan,
    *,
    output: Path,
    image: Path | None = None,
    image_demuxer: str | None = None,
    text_file: Path | None = None,
    font_file: Path | None = None,
) -> list[str]:
    """ffmpeg arguments (after the binary and the progress options)."""
    frames = p.duration * FPS
    args: list[str] = []
    if image is not None:
        args += ["-protocol_whitelist", "file,pipe"]
        if image_demuxer:
            args += ["-f", image_demuxer]
        args += ["-i", "file:" + str(image.absolute())]
        # Cover the frame, then one slow zoom in over the whole duration.
        chain = [
            f"scale={p.width}:{p.height}:force_original_aspect_ratio=increase",
            f"crop={p.width}:{p.height}",
            "setsar=1",
            f"zoompan=z='1+0.3*on/{frames}'"
            ":x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
            f":d={frames}:s={p.width}x{p.height}:fps={FPS}",
        ]
    else:
        args += ["-f", "lavfi", "-i", source_filter(p)]
        chain = [f"scale={p.width}:{p.height}"] if p.pattern == "mandelbrot" else []
    if text_file is not None and font_file is not None:
        font_size = max(12, p.height // 18)
        chain.append(
            f"drawtext=fontfile={_escape(str(font_file))}:textfile={_escape(str(text_file))}"
            f":expansion=none:fontsize={font_size}:fontcolor=white:line_spacing={font_size // 4}"
            ":box=1:boxcolor=black@0.55:boxborderw=12"
            ":x=(w-text_w)/2:y=h-text_h-h/10"
        )
    chain += ["format=yuv420p"]
    args += [
        "-vf",
        ",".join(chain),
        "-map",
        "0:v:0",
        "-an",
        "-r",
        str(FPS),
        "-t",
        str(p.duration),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "file:" + str(output.absolute()),
    ]
    return args


def find_font(configured: str, exists: Callable[[Path], bool] = Path.is_file) -> Path | None:
    if configured:
        path = Path(configured)
        return path if exists(path) else None
    return next((Path(c) for c in FONT_CANDIDATES if exists(Path(c))), None)


class LocalProvider:
    """Always configured, never remote; priced by a setting (0 by default)."""

    name = NAME

    def __init__(self, *, price_per_second: float, max_seconds: int) -> None:
        self._price = price_per_second
        self._max_seconds = max_seconds

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=NAME,
            models=(MODEL,),
            resolutions=RESOLUTIONS,
            durations=tuple(range(1, self._max_seconds + 1)),
            aspect_ratios=ASPECT_RATIOS,
            image_to_video=True,
            price_per_second=self._price,
            configured=True,
        )

    def default_model(self) -> str:
        return MODEL

    def estimate(self, spec: GenerationSpec) -> int:
        return credits_for(self._price, spec.duration_seconds)
