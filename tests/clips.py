"""Small real media files for tests, generated with ffmpeg from lavfi sources.

Plain (blocking) functions, so session fixtures can call them too. They run
the same ffmpeg the server would pick (FRAMEFLOW_FFMPEG_PATH, else PATH, else
imageio-ffmpeg's), and work with ffmpeg 5.1 and 9.x alike. Defaults are tiny
(1-2 s, 320x240) and use the fastest encoder settings, so a clip costs a
fraction of a second. Video is yuv420p so that browsers can play it.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import subprocess
import zlib
from pathlib import Path

from server.media.binary import resolve_ffmpeg

# container -> (muxer, default video codec args, default audio codec)
_CONTAINERS: dict[str, tuple[str, list[str], str]] = {
    "mp4": ("mp4", ["-c:v", "libx264", "-preset", "ultrafast"], "aac"),
    "mov": ("mov", ["-c:v", "libx264", "-preset", "ultrafast"], "aac"),
    "mkv": ("matroska", ["-c:v", "libx264", "-preset", "ultrafast"], "aac"),
    "webm": (
        "webm",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
        "libopus",
    ),
    "avi": ("avi", ["-c:v", "mpeg4", "-q:v", "5"], "libmp3lame"),
    "ts": ("mpegts", ["-c:v", "libx264", "-preset", "ultrafast"], "aac"),
}

_IMAGE_CODECS = {"jpeg": "mjpeg", "jpg": "mjpeg", "png": "png", "webp": "libwebp"}


@functools.cache
def ffmpeg_exe() -> str:
    return resolve_ffmpeg(os.environ.get("FRAMEFLOW_FFMPEG_PATH", ""))


def run(args: list[str]) -> None:
    """Run ffmpeg with ``args``; fail loudly with its stderr."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed:\n{proc.stderr}")


def make_clip(
    path: str | Path,
    *,
    seconds: float = 2,
    width: int = 320,
    height: int = 240,
    fps: float = 25,
    container: str = "mp4",
    audio: bool = True,
    rotate: int | None = None,
    video_codec: str | None = None,
    audio_codec: str | None = None,
) -> Path:
    """A test-pattern video (with a 440 Hz tone unless ``audio=False``) at ``path``.

    ``container`` is one of mp4, mov, mkv, webm, avi, ts. ``rotate`` (mp4 and
    mov only) tags the clip the way a phone does: the clockwise degrees to turn
    it for display, as ``MediaInfo.rotation`` reports it; the pixels stay
    ``width`` x ``height``. ``video_codec``/``audio_codec`` replace the
    container's default encoder (ffmpeg encoder names).
    """
    path = Path(path)
    if container not in _CONTAINERS:
        raise ValueError(f"unknown container {container!r}; one of {sorted(_CONTAINERS)}")
    if rotate is not None and container not in ("mp4", "mov"):
        raise ValueError("rotation tags are only written to mp4 and mov")
    muxer, video_args, default_audio = _CONTAINERS[container]
    if video_codec is not None:
        video_args = ["-c:v", video_codec]

    args = ["-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", audio_codec or default_audio, "-b:a", "64k"]
    # A keyframe every second keeps seeking and segmenting tests realistic.
    args += [*video_args, "-pix_fmt", "yuv420p", "-g", str(max(1, round(fps)))]
    args += ["-t", str(seconds), "-f", muxer]

    if rotate is None:
        run([*args, str(path)])
        return path
    unrotated = path.with_name(path.stem + ".unrotated" + path.suffix)
    run([*args, str(unrotated)])
    try:
        _tag_rotation(unrotated, path, rotate, muxer)
    finally:
        unrotated.unlink(missing_ok=True)
    return path


def _tag_rotation(source: Path, target: Path, clockwise: int, muxer: str) -> None:
    # ffmpeg >= 6 has -display_rotation, whose angle is counter-clockwise.
    # ffmpeg 5.x lacks it but turns a "rotate" stream tag into the display
    # matrix, with the angle counter-clockwise as well (checked on Debian's
    # 5.1: rotate=270 gives "displaymatrix: rotation of -90.00 degrees").
    # Either way it is a remux (-c copy): re-encoding would apply the turn.
    counter_clockwise = (-clockwise) % 360
    try:
        run(
            [
                "-display_rotation",
                str(counter_clockwise),
                "-i",
                str(source),
                "-c",
                "copy",
                "-f",
                muxer,
                str(target),
            ]
        )
    except RuntimeError as exc:
        if "display_rotation" not in str(exc):
            raise
        run(
            [
                "-i",
                str(source),
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={counter_clockwise}",
                "-f",
                muxer,
                str(target),
            ]
        )


def make_image(path: str | Path, fmt: str = "png", *, width: int = 320, height: int = 256) -> Path:
    """A single test-pattern image at ``path``; ``fmt`` is jpeg (jpg), png or webp."""
    path = Path(path)
    if fmt not in _IMAGE_CODECS:
        raise ValueError(f"unknown image format {fmt!r}; one of {sorted(_IMAGE_CODECS)}")
    run(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={width}x{height}",
            "-frames:v",
            "1",
            "-c:v",
            _IMAGE_CODECS[fmt],
            "-f",
            "image2",
            "-update",
            "1",
            str(path),
        ]
    )
    return path


def black_png(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of any size, made in ~50 ms whatever the size.

    ffmpeg would need seconds and gigabytes to encode a 16000x16000 picture;
    this writes the compressed rows directly: each block of rows compresses
    to the same bytes after a full flush, so one block is compressed and
    repeated. Decoded, it takes width x height x 3 bytes: a decompression bomb.
    """
    row = bytes(1 + width * 3)  # filter type 0, then black pixels
    rows_per_block = math.gcd(height, 64)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate
    compressor.compress(row * rows_per_block)
    compressor.flush(zlib.Z_FULL_FLUSH)
    # The first block may differ (no history yet); from the second on they repeat.
    block = compressor.compress(row * rows_per_block) + compressor.flush(zlib.Z_FULL_FLUSH)
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = first.compress(row * rows_per_block) + first.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    # Adler-32 of zeros only: a = 1, b = the number of bytes.
    adler = ((len(row) * height % 65521) << 16) | 1
    blocks = height // rows_per_block
    idat = b"\x78\xda" + head + block * (blocks - 1) + tail + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
