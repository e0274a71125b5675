"""HLS playlists rewritten as they are served, so that playback outlives its link.

A player fetches the master playlist once, a variant playlist once, then its
segments over the whole length of the film. If the segments resolved under
the link's own token, they would stop loading when the link expired. So a
playlist served under a valid token names every URI with a fresh playback
token (`links.renewed_token`) instead:

    segment_00002.ts  →  ../../../{fresh token}/hls/480p/segment_00002.ts

The URI stays relative — the `../` climb back to `…/t/` from wherever the
playlist was fetched — so it resolves on any host and behind any proxy
prefix. Only URIs that point inside the job's outputs are rewritten;
absolute URLs and paths that leave the tree pass through unchanged.

Playlists are read and written line by line from storage, never held
whole; a line too long to be a URI passes through untouched.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass

PLAYLIST_SUFFIX = ".m3u8"
PLAYLIST_TYPES = frozenset({"application/vnd.apple.mpegurl", "application/x-mpegurl"})
# Far above any URI or tag this server writes; bounds what one line may buffer.
MAX_LINE_BYTES = 16 * 1024

# Tags that carry a URI in an attribute: EXT-X-MAP, EXT-X-KEY, EXT-X-MEDIA,
# EXT-X-I-FRAME-STREAM-INF, EXT-X-SESSION-DATA, ...
_URI_ATTRIBUTE = re.compile(r'(URI=")([^"]*)(")')
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_playlist(name: str, content_type: str) -> bool:
    return name.endswith(PLAYLIST_SUFFIX) or content_type.lower() in PLAYLIST_TYPES


@dataclass(frozen=True)
class UriRewriter:
    """Rewrites the URIs of one playlist served from `…/t/{token}/{name}`."""

    base_dir: str  # the playlist's directory among the job's outputs, e.g. "hls/480p"
    up: str  # "../" once per path segment after the token in the requested URL
    token: str  # the fresh playback token

    def uri(self, uri: str) -> str:
        if not uri or uri.startswith(("/", "?", "#", "\\")) or _SCHEME.match(uri):
            return uri  # absolute, or nothing to resolve
        cut = min((i for i in (uri.find("?"), uri.find("#")) if i != -1), default=len(uri))
        path, rest = uri[:cut], uri[cut:]
        target = posixpath.normpath(posixpath.join(self.base_dir, path))
        if target in {".", ".."} or target.startswith("../"):
            return uri  # outside the job's outputs: not ours to sign
        return f"{self.up}{self.token}/{target}{rest}"

    def line(self, line: str) -> str:
        """One playlist line (without its line break), rewritten."""
        stripped = line.strip()
        if not stripped:
            return line
        if stripped.startswith("#"):
            if stripped.startswith("#EXT") and 'URI="' in line:
                return _URI_ATTRIBUTE.sub(lambda m: m[1] + self.uri(m[2]) + m[3], line)
            return line  # a comment, or a tag without a URI
        return self.uri(stripped)


def up_to_token(segments_after_token: int) -> str:
    return "../" * max(segments_after_token, 1)


def directory_of(name: str) -> str:
    return posixpath.dirname(name)


async def rewrite_lines(
    chunks: AsyncIterable[bytes],
    rewrite: Callable[[str], str],
    max_line_bytes: int = MAX_LINE_BYTES,
) -> AsyncGenerator[bytes, None]:
    """`chunks` of a playlist with `rewrite` applied to each line, streamed."""
    pending = b""
    overlong = False  # inside a line too long to rewrite: passed through as it comes
    async for chunk in chunks:
        data = pending + chunk
        out: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            line = data[start:end]
            out.append((line if overlong else _rewrite_line(line, rewrite)) + b"\n")
            overlong = False
            start = end + 1
        pending = data[start:]
        if overlong or len(pending) > max_line_bytes:
            out.append(pending)
            pending = b""
            overlong = True
        if out:
            yield b"".join(out)
    if pending:
        yield _rewrite_line(pending, rewrite)


def _rewrite_line(line: bytes, rewrite: Callable[[str], str]) -> bytes:
    body, cr = (line[:-1], b"\r") if line.endswith(b"\r") else (line, b"")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return line  # not a URI we could have written: left alone
    return rewrite(text).encode("utf-8") + cr
