"""Read an upload's metadata with ONE ffmpeg run, and prove its first frame decodes.

imageio-ffmpeg ships no ffprobe, so metadata comes from the stream dump that
ffmpeg prints for its input. That dump is meant for people, and it changes
between releases; the parser below reads only the ``Input #0`` section, takes
each value from a pattern that ffmpeg 4.x, 5.1 and 9.x all print, and is a
pure function tested on output captured from those versions.

Rotation is reported the way phones tag portrait video (and the way ffmpeg 4
printed its ``rotate`` tag): the clockwise turn, in degrees, that the stored
picture needs for display. ffmpeg's display matrix line prints the opposite
sign ("rotation of -90.00 degrees" is a counter-clockwise angle), so a
portrait iPhone clip is ``rotation == 90`` here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.media.pixels import (
    decoder_pixel_limit,
    refused_picture_reason,
    too_many_pixels_reason,
)
from server.media.process import run_ffmpeg
from server.media.sandbox import NO_SANDBOX, Sandbox
from server.media.sniff import ALLOWED_DEMUXERS


class ProbeError(Exception):
    """The file is not a usable video or image; ``reason`` is safe to show the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MediaInfo:
    container: str  # ffmpeg's demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None  # seconds; None for still images and unknown lengths
    bitrate: int | None  # overall bits per second
    width: int  # as stored, before rotation
    height: int
    fps: float | None
    video_codec: str
    pixel_format: str | None
    audio_codec: str | None  # None: no audio stream
    rotation: int  # 0, 90, 180 or 270, clockwise, to apply for display

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Decoding the first frame allocates width x height pixels, which a few bytes
# of PNG or JPEG header can make gigantic (16000x16000 RGB: 768 MB from a file
# of 1 MB). So every probe takes the limit explicitly, the server's
# `max_pixels` setting, and ffmpeg's decoder enforces it before it allocates.
def probe_argv(ffmpeg: str, path: Path, demuxer: str, *, max_pixels: int) -> list[str]:
    """The probe command line; each part is explained where it is added."""
    if demuxer not in ALLOWED_DEMUXERS:
        raise ValueError(f"demuxer {demuxer!r} is not on the allow-list")
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        # An input option, so it applies to the decoder (ffmpeg 5.1 and 9.x
        # alike): the picture size is refused as the header is parsed,
        # before a frame is allocated.
        "-max_pixels",
        str(decoder_pixel_limit(max_pixels)),
        # Pinning the demuxer and the protocols is what stops a playlist or a
        # concat list from reaching other files or the network.
        "-protocol_whitelist",
        "file,pipe",
        "-f",
        demuxer,
        "-i",
        _input_url(path),
        # 0:V (capital) skips cover-art pictures, which count as video streams
        # for 0:v; the parser skips them too so both agree on "the" video.
        "-map",
        "0:V:0",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]


async def probe(
    ffmpeg: str,
    path: Path,
    demuxer: str,
    *,
    timeout: float,  # noqa: ASYNC109 -- becomes FfmpegTimeout after killing ffmpeg
    max_pixels: int,
    sandbox: Sandbox = NO_SANDBOX,
) -> MediaInfo:
    """Metadata of the server-made file ``path``, opened with the pinned ``demuxer``.

    Raises ProbeError when ffmpeg cannot open or decode it, it has no video,
    or its frames are larger than ``max_pixels``; FfmpegTimeout when that
    takes longer than ``timeout`` seconds. ffmpeg runs in ``sandbox``, able
    to read ``path`` and nothing it does not need.
    """
    argv = probe_argv(ffmpeg, path, demuxer, max_pixels=max_pixels)
    result = await run_ffmpeg(sandbox.wrap(argv, read=[path]), timeout=timeout)
    if result.returncode != 0:
        hidden_url = _input_url(path)
        hidden = (str(path), hidden_url, hidden_url.removeprefix("file:"))
        reason = _explained_by_dump(result.stderr_head, max_pixels) or error_reason(
            result.stderr_tail, hide=hidden
        )
        raise ProbeError(reason)
    info = parse_probe_output(result.stderr_head)
    too_big = _too_many_pixels(info, max_pixels)
    if too_big:
        raise ProbeError(too_big)
    if decoded_frames(result.stderr_tail) == 0:
        raise ProbeError("no video frame could be decoded")
    return info


def _explained_by_dump(stderr_head: str, max_pixels: int) -> str | None:
    """A reason for a failed probe from the stream dump, if it shows one.

    It says it more plainly than the error lines, where ffmpeg 7+ buries the
    decoder's message under its own thread bookkeeping.
    """
    over = refused_picture_reason(stderr_head, max_pixels)
    if over:
        return over
    section = _input_section(stderr_head)
    if section is None:
        return None
    if _first_video_stream(section) is None:
        return "no video stream"
    try:
        info = parse_probe_output(stderr_head)
    except ProbeError:
        return None
    return _too_many_pixels(info, max_pixels)


def _too_many_pixels(info: MediaInfo, max_pixels: int) -> str | None:
    if info.width * info.height <= max_pixels:
        return None
    return too_many_pixels_reason(info.width, info.height, max_pixels)


def _input_url(path: Path) -> str:
    # "file:" plus an absolute path: never read as an option (leading "-") or
    # as another protocol ("name:with:colons").
    return "file:" + str(path.absolute())


# --- parsing (pure) ---------------------------------------------------------

_INPUT_RE = re.compile(r"^Input #0, (?P<format>.+?), from '")
_DURATION_RE = re.compile(r"^\s+Duration: (?P<duration>N/A|\d+:\d{2}:\d{2}(?:\.\d+)?)")
_BITRATE_RE = re.compile(r"bitrate: (?P<kbps>\d+) kb/s")
# "Stream #0:0: Video:", "Stream #0:0(und): Video:", "Stream #0:0[0x1](und): Video:"
_STREAM_RE = re.compile(
    r"^(?P<indent>\s+)Stream #0:(?P<index>\d+)\S*: (?P<type>\w+): (?P<desc>.*)$"
)
_SIZE_RE = re.compile(r"^(?P<w>\d+)x(?P<h>\d+)\b")
_RATE_RE = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<k>k?) (?P<unit>fps|tbr)\b")
_CODEC_RE = re.compile(r"^(?P<name>[\w.\-]+)")
_PIXFMT_RE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:\(.*\))?$")
# ffmpeg 5.x "displaymatrix: rotation of -90.00 degrees",
# ffmpeg 9.x "Display Matrix: rotation of -90.00 degrees"
_DISPLAYMATRIX_RE = re.compile(
    r"display ?matrix: rotation of (?P<degrees>-?\d+(?:\.\d+)?) degrees", re.IGNORECASE
)
# ffmpeg 4.x stream metadata "rotate          : 90"
_ROTATE_TAG_RE = re.compile(r"^\s+rotate\s*: (?P<degrees>-?\d+(?:\.\d+)?)\s*$")
_FRAME_RE = re.compile(r"frame=\s*(?P<frames>\d+)")
# Error lines that say nothing about the file: ones that only name it, and
# ffmpeg 7+'s thread bookkeeping around the real message.
_NOISE_RE = re.compile(
    r"(Error opening input file )?'?<input>'?\.?"
    r"|Conversion failed!"
    r"|Last message repeated \d+ times"
    r"|Task finished with error code: .*"
    r"|Terminating thread with return code .*"
)
_LOG_PREFIX_RE = re.compile(r"^(?:\[[^\]]* @ (?:0x)?[0-9a-fA-F]+\]\s*)+")


@dataclass
class _Stream:
    index: int
    type: str
    desc: str
    display_matrix: float | None = None
    rotate_tag: float | None = None


@dataclass
class _Section:
    container: str
    lines: list[str]
    streams: list[_Stream]


def parse_probe_output(text: str) -> MediaInfo:
    """MediaInfo from ffmpeg's stderr; only the ``Input #0`` section is read.

    Output sections are ignored on purpose: they describe what ffmpeg made
    (rotated, re-encoded), not the upload.
    """
    section = _input_section(text)
    if section is None:
        raise ProbeError("ffmpeg found no readable media in this file")
    video = _first_video_stream(section)
    if video is None:
        raise ProbeError("no video stream")

    duration: float | None = None
    bitrate: int | None = None
    for line in section.lines:
        m = _DURATION_RE.match(line)
        if m:
            duration = _parse_duration(m["duration"])
            b = _BITRATE_RE.search(line)
            bitrate = int(b["kbps"]) * 1000 if b else None
            break

    parts = _split_top_level(video.desc)
    codec = _CODEC_RE.match(parts[0].strip()) if parts else None
    if codec is None:
        raise ProbeError("the video stream has no codec")

    width = height = None
    fps = tbr = None
    pixel_format = None
    for i, part in enumerate(parts[1:], start=1):
        part = part.strip()
        size = _SIZE_RE.match(part)
        if size and width is None:
            width, height = int(size["w"]), int(size["h"])
            continue
        rate = _RATE_RE.match(part)
        if rate:
            value = float(rate["value"]) * (1000 if rate["k"] else 1)
            if rate["unit"] == "fps":
                fps = value
            else:
                tbr = value
            continue
        # The pixel format, when known, comes right after the codec.
        pix = _PIXFMT_RE.match(part)
        if i == 1 and pix and pix["name"] != "none":
            pixel_format = pix["name"]
    if not width or not height:
        raise ProbeError("the video stream has no dimensions")

    audio = next((s for s in section.streams if s.type == "Audio"), None)
    audio_codec = None
    if audio is not None:
        a = _CODEC_RE.match(audio.desc.strip())
        audio_codec = a["name"] if a else None

    return MediaInfo(
        container=section.container,
        duration=duration,
        bitrate=bitrate,
        width=width,
        height=height,
        fps=fps if fps else tbr,
        video_codec=codec["name"],
        pixel_format=pixel_format,
        audio_codec=audio_codec,
        rotation=_rotation(video),
    )


def decoded_frames(stderr_tail: str) -> int | None:
    """Frames ffmpeg reported in its last progress line, None if none printed."""
    found = _FRAME_RE.findall(stderr_tail)
    return int(found[-1]) if found else None


def error_reason(stderr_tail: str, *, hide: tuple[str, ...] = (), max_chars: int = 300) -> str:
    """A short reason from ffmpeg's last error lines, without the strings in ``hide``.

    ``hide`` is for the server's own paths: they must not reach the uploader.
    """
    lines: list[str] = []
    for raw in re.split(r"[\r\n]+", stderr_tail):
        if raw[:1].isspace():
            continue  # part of a stream dump, not an error message
        line = _LOG_PREFIX_RE.sub("", raw.strip())
        for secret in sorted(hide, key=len, reverse=True):
            if secret:
                line = line.replace(secret, "<input>")
        if not line or line.startswith(("frame=", "size=", "video:")) or _NOISE_RE.fullmatch(line):
            continue
        if line not in lines:
            lines.append(line)
    reason = "; ".join(lines[-3:]) or "unknown error"
    return reason if len(reason) <= max_chars else reason[: max_chars - 1] + "…"


def _input_section(text: str) -> _Section | None:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _INPUT_RE.match(line)), None)
    if start is None:
        return None
    head = _INPUT_RE.match(lines[start])
    assert head is not None
    body: list[str] = []
    for line in lines[start + 1 :]:
        # The section is the indented block under "Input #0"; the next
        # unindented line ("Stream mapping:", "Output #0", an error) ends it.
        # "[decoder @ 0x..] warning" log lines may interleave: skip them.
        if line and not line[0].isspace():
            if line.startswith("["):
                continue
            break
        body.append(line)

    streams: list[_Stream] = []
    current: _Stream | None = None
    current_indent = 0
    for line in body:
        m = _STREAM_RE.match(line)
        if m:
            current = _Stream(int(m["index"]), m["type"], m["desc"])
            current_indent = len(m["indent"])
            streams.append(current)
            continue
        indent = len(line) - len(line.lstrip())
        if current is None or not line.strip():
            continue
        # ffmpeg 5+ indents a stream's "Metadata:"/"Side data:" deeper than
        # its "Stream #" line, ffmpeg 4 at the same depth; anything else at
        # that depth or shallower ("  Stream group ...") ends the stream.
        if indent < current_indent or (
            indent == current_indent and line.strip() not in ("Metadata:", "Side data:")
        ):
            current = None
            continue
        dm = _DISPLAYMATRIX_RE.search(line)
        if dm:
            current.display_matrix = float(dm["degrees"])
        tag = _ROTATE_TAG_RE.match(line)
        if tag:
            current.rotate_tag = float(tag["degrees"])
    return _Section(container=head["format"], lines=body, streams=streams)


def _first_video_stream(section: _Section) -> _Stream | None:
    return next(
        (s for s in section.streams if s.type == "Video" and "(attached pic)" not in s.desc),
        None,
    )


def _parse_duration(value: str) -> float | None:
    if value == "N/A":
        return None
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _rotation(stream: _Stream) -> int:
    if stream.display_matrix is not None:
        clockwise = -stream.display_matrix
    elif stream.rotate_tag is not None:
        clockwise = stream.rotate_tag
    else:
        return 0
    # Snap to a quarter turn: players only honour those.
    return (round(clockwise / 90) * 90) % 360


def _split_top_level(desc: str) -> list[str]:
    """Split a stream description on commas outside (), [] — "yuv420p(tv, bt709)"."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in desc:
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
