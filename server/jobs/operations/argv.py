"""Pure pieces of ffmpeg argument lists that every operation shares."""

from __future__ import annotations

from pathlib import Path

from server.jobs.operations.protocol import OperationFailed
from server.media.sniff import ALL_TYPES
from server.videos.model import Video


def decimal(value: float) -> str:
    """A number as ffmpeg and people read it: plain decimal, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def file_url(path: Path) -> str:
    """A path ffmpeg reads as a local file: never as an option or another protocol."""
    return "file:" + str(path.absolute())


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
        file_url(path),
    ]
