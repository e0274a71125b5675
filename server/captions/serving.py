"""Answers that carry captions: a WebVTT file, a subtitle playlist, and a master
playlist streamed with its `SUBTITLES` group added (the HTTP side of `hls.py`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing

from aiohttp import web

from server.jobs.playlists import rewrite_lines
from server.storage.base import Storage

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def vtt_response(text: str) -> web.Response:
    # no-cache: a replaced or deleted track shows at the next revalidation.
    return web.Response(
        text=text,
        content_type="text/vtt",
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def playlist_response(text: str) -> web.Response:
    return web.Response(text=text, content_type=PLAYLIST_TYPE, headers=_NO_STORE)


async def stream_rewritten(
    request: web.Request,
    storage: Storage,
    key: str,
    content_type: str,
    rewrite: Callable[[str], str],
) -> web.StreamResponse:
    """A stored playlist with `rewrite` applied to each line; never cached (it changes)."""
    resp = web.StreamResponse(headers=_NO_STORE)
    resp.content_type = content_type
    await resp.prepare(request)
    if request.method != "HEAD":
        async with (
            aclosing(storage.read(key)) as chunks,
            aclosing(rewrite_lines(chunks, rewrite)) as lines,
        ):
            async for part in lines:
                await resp.write(part)
    await resp.write_eof()
    return resp
