"""Captions as an HLS `SUBTITLES` group (pure).

A master playlist served with captions gets, after `#EXTM3U`, one
`#EXT-X-MEDIA:TYPE=SUBTITLES` per language, and `SUBTITLES="subs"` on each
variant. Their URIs are relative — `captions/{language}.m3u8` next to the
master — so they resolve under whatever token or share grant the master was
fetched with, and a token route rewrites them like any other URI. That
subtitle playlist is made on request: one WebVTT "segment" spanning the video,
`{language}.vtt` beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.captions.model import Caption

SUBTITLE_GROUP = "subs"
CAPTIONS_DIR = "captions"
# A name under the HLS directory that is a caption file, not a stored output.
_CAPTION_FILE = re.compile(r"^captions/([A-Za-z0-9-]{1,35})\.(m3u8|vtt)$")


def caption_file(name: str) -> tuple[str, str] | None:
    """`captions/en.m3u8` → ("en", "m3u8"); None for any other name (relative to hls/)."""
    match = _CAPTION_FILE.match(name)
    return (match.group(1), match.group(2)) if match else None


def _quoted(value: str) -> str:
    # Quoted-string attributes may not hold '"' or line breaks.
    return re.sub(r'["\r\n]', "'", value)


def media_tags(captions: Sequence[Caption]) -> list[str]:
    tags = []
    for index, caption in enumerate(captions):
        default = "YES" if index == 0 else "NO"
        tags.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLE_GROUP}",'
            f'NAME="{_quoted(caption.label)}",LANGUAGE="{caption.language}",'
            f"DEFAULT={default},AUTOSELECT=YES,FORCED=NO,"
            f'URI="{CAPTIONS_DIR}/{caption.language}.m3u8"'
        )
    return tags


@dataclass(frozen=True)
class MasterWithSubtitles:
    """Rewrites the lines of a master playlist to offer `captions`."""

    captions: Sequence[Caption]

    def line(self, line: str) -> str:
        if not self.captions:
            return line
        stripped = line.strip()
        if stripped == "#EXTM3U":
            return "\n".join([line, *media_tags(self.captions)])
        if stripped.startswith("#EXT-X-STREAM-INF:") and "SUBTITLES=" not in stripped:
            return f'{line.rstrip()},SUBTITLES="{SUBTITLE_GROUP}"'
        return line


def subtitle_playlist(language: str, duration: float | None) -> str:
    """The media playlist of one language: its whole WebVTT as one segment."""
    seconds = duration if duration and duration > 0 else 1.0
    return "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXTINF:{seconds:.3f},",
            f"{language}.vtt",
            "#EXT-X-ENDLIST",
            "",
        ]
    )
