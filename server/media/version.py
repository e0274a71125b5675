"""Which FFmpeg release a binary is, and refusing one older than we support.

``ffmpeg -version`` prints its version on the first line, in whatever form
the packager chose: "5.1.6-0+deb12u1" (Debian), "n9.0.2-17-g2a571b6068-20260930"
(BtbN's builds, which imageio-ffmpeg ships), "6.0-static" (johnvansickle),
"7.0.2-full_build-www.gyan.dev", or no release at all for builds from git
("N-113358-g...", "2024-03-11-git-3d18..."). Every build also prints its
libavcodec version, which moves with the code; for builds without a release
number that tells which release's code they contain at least.

The parser is pure and tested on those strings; only `read_ffmpeg_version`
runs ffmpeg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.media.process import FfmpegError, run_ffmpeg

Version = tuple[int, ...]

# libavcodec (major, minor) of each release's x.y.0, oldest first.
_LIBAVCODEC_OF_RELEASE: tuple[tuple[tuple[int, int], Version], ...] = (
    ((58, 18), (4, 0)),
    ((58, 35), (4, 1)),
    ((58, 54), (4, 2)),
    ((58, 91), (4, 3)),
    ((58, 134), (4, 4)),
    ((59, 18), (5, 0)),
    ((59, 37), (5, 1)),
    ((60, 3), (6, 0)),
    ((60, 31), (6, 1)),
    ((61, 3), (7, 0)),
    ((61, 19), (7, 1)),
    ((62, 11), (8, 0)),
    ((63, 1), (9, 0)),
)

_FIRST_LINE_RE = re.compile(r"^\s*ffmpeg version (?P<text>\S+)")
# A release number opens the string: "5.1.6-0+deb12u1", "n7.1", "9.0.2-static".
# A date ("2024-03-11-git-...") has no dot after its first number, so it is no release.
_RELEASE_RE = re.compile(r"^n?(?P<numbers>\d+\.\d+(?:\.\d+)?)(?![\d.])")
_LIBAVCODEC_RE = re.compile(
    r"^\s*libavcodec\s+(?P<major>\d+)\.\s*(?P<minor>\d+)\.\s*(?P<micro>\d+)", re.MULTILINE
)


class FfmpegVersionError(RuntimeError):
    """The ffmpeg in use is too old, or its version cannot be told; the message says why."""


@dataclass(frozen=True, slots=True)
class FfmpegVersion:
    text: str  # as printed, e.g. "5.1.6-0+deb12u1"; "" when there was no version line
    release: Version | None  # the release it names, when it names one
    libavcodec: tuple[int, int, int] | None

    @property
    def effective(self) -> Version | None:
        """The release this build is at least: the one it names, else its libavcodec's."""
        if self.release is not None:
            return self.release
        if self.libavcodec is None:
            return None
        found = self.libavcodec[:2]
        known = [release for lavc, release in _LIBAVCODEC_OF_RELEASE if lavc <= found]
        return known[-1] if known else None

    def describe(self) -> str:
        effective = self.effective
        shown = self.text or "unknown"
        if effective is not None and self.release is None:
            shown += f" (libavcodec of {format_version(effective)})"
        return shown


def parse_ffmpeg_version(output: str) -> FfmpegVersion:
    """What `ffmpeg -version` printed, read (pure)."""
    text = ""
    release: Version | None = None
    first = _FIRST_LINE_RE.match(output)
    if first:
        text = first["text"]
        number = _RELEASE_RE.match(text)
        if number:
            release = tuple(int(part) for part in number["numbers"].split("."))
    lavc = _LIBAVCODEC_RE.search(output)
    libavcodec = (int(lavc["major"]), int(lavc["minor"]), int(lavc["micro"])) if lavc else None
    return FfmpegVersion(text=text, release=release, libavcodec=libavcodec)


def parse_min_version(value: str) -> Version | None:
    """The `ffmpeg_min_version` setting: None (no check) for "" or "0", else e.g. (5, 1)."""
    value = value.strip()
    if value in ("", "0"):
        return None
    if not re.fullmatch(r"\d+(\.\d+){0,2}", value):
        raise ValueError(f"{value!r} is not a version like 5.1 or 6.0.1")
    return tuple(int(part) for part in value.split("."))


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def version_problem(found: FfmpegVersion, minimum: Version | None) -> str | None:
    """Why `found` is not acceptable under `minimum` (None: it is)."""
    if minimum is None:
        return None
    effective = found.effective
    required = format_version(minimum)
    if effective is None:
        return (
            f"cannot tell which release ffmpeg {found.text or '(no version line)'} is; "
            f"FFmpeg {required} or newer is required"
        )
    if _padded(effective) < _padded(minimum):
        return f"ffmpeg {found.describe()} is older than {required}, the oldest supported release"
    return None


def _padded(version: Version) -> Version:
    return (*version, 0, 0, 0)[:3]


async def read_ffmpeg_version(ffmpeg: str) -> FfmpegVersion:
    """Run `ffmpeg -version` (no input, nothing else) and parse what it prints."""
    # -version prints to stdout; collect it through on_stdout.
    chunks: list[bytes] = []
    try:
        result = await run_ffmpeg([ffmpeg, "-version"], timeout=30, on_stdout=chunks.append)
    except (OSError, FfmpegError) as exc:
        raise FfmpegVersionError(f"cannot run {ffmpeg} -version: {exc}") from exc
    if not result.ok:
        raise FfmpegVersionError(
            f"{ffmpeg} -version exited with status {result.returncode}: "
            + result.stderr_tail.strip()[-300:]
        )
    return parse_ffmpeg_version(b"".join(chunks).decode("utf-8", errors="replace"))


def check_ffmpeg_version(ffmpeg: str, found: FfmpegVersion, minimum: Version | None) -> None:
    """Raise FfmpegVersionError naming the found and required versions, and the way out."""
    problem = version_problem(found, minimum)
    if problem is not None:
        raise FfmpegVersionError(
            f"{problem} ({ffmpeg}). Install a newer FFmpeg or point FRAMEFLOW_FFMPEG_PATH at one; "
            "FRAMEFLOW_FFMPEG_MIN_VERSION=0 skips this check (for testing only)."
        )
