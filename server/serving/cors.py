"""CORS for signed media links: any origin may read them, preflight included.

A signed link carries its own authority (the signature in its query, or the
token in its path) and no cookie or header is involved, so a page on any
origin may read it: `<video crossorigin>`, canvas, `fetch`, MSE players such
as hls.js that send `Range` (and `If-Range`/`If-None-Match`, which need a
preflight). Routes authenticated by a bearer token get no CORS headers at
all: they stay same-origin.

A handler opts in with `@signed_media(...)`; one `on_response_prepare` hook
adds the headers to everything its route answers, errors included, so a
player on another origin sees a 404 for an expired link rather than an
opaque network error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from server.errors import MethodNotAllowed

ALLOW_METHODS = "GET, HEAD"
ALLOW_HEADERS = "Range, If-Range, If-None-Match"
EXPOSE_HEADERS = "Content-Range, Content-Length, Accept-Ranges, ETag"
# Browsers cap it (Chromium at 2 h); the answer never changes anyway.
MAX_AGE_SECONDS = 86400

_MARK = "__frameflow_signed_media__"
Condition = Callable[[web.Request], bool]
F = TypeVar("F", bound=Callable[..., Any])


def _always(request: web.Request) -> bool:
    return True


def signed_media(when: Condition = _always) -> Callable[[F], F]:
    """Mark a handler as serving signed media, for the requests where `when` holds."""

    def mark(handler: F) -> F:
        setattr(handler, _MARK, when)
        return handler

    return mark


def _condition(request: web.Request) -> Condition | None:
    match_info = request.match_info
    return getattr(match_info.handler, _MARK, None) if match_info is not None else None


async def add_signed_media_cors(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: CORS headers on what signed media routes answer."""
    when = _condition(request)
    if when is not None and when(request):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def preflight_for(when: Condition = _always) -> Callable[[web.Request], Any]:
    """An OPTIONS handler: a 204 preflight answer where `when` holds, else 405 as before."""

    @signed_media(when)
    async def preflight(request: web.Request) -> web.Response:
        if not when(request):
            raise MethodNotAllowed(ALLOW_METHODS)
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            },
        )

    return preflight
