"""Reading request bodies at the edge: when to say `100 Continue`, how long to wait.

- `Expect: 100-continue` is answered late. Routes that take large bodies use
  `defer_continue` as their aiohttp expect handler, which sends nothing; the
  interim `100 Continue` goes out from `send_continue`, called just before
  the first body read — after authentication, size and quota checks passed.
  A client refused earlier never sends the body it announced.
- Every read waits at most `body_idle_timeout_seconds` for the next bytes;
  a client that stops sending mid-body gets a 408 and its connection closed
  (a stalled body would otherwise hold a descriptor and an upload's writer).
- A body whose framing aiohttp refuses (broken chunked encoding) is a 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import HttpVersion11, web
from aiohttp.web_protocol import RequestPayloadError

from server import appkeys
from server.errors import BadRequest, RequestTimeout

T = TypeVar("T")

_CONTINUE_PENDING = web.RequestKey("continue_pending", bool)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def defer_continue(request: web.Request) -> None:
    """aiohttp expect handler: remember the expectation, answer it in `send_continue`.

    Other expectations are ignored, which RFC 9110 §10.1.1 allows (a 417 is a
    MAY), and HTTP/1.0 has no interim responses: such clients send the body.
    """
    expect = request.headers.get("Expect", "").strip().lower()
    if expect == "100-continue" and request.version == HttpVersion11:
        request[_CONTINUE_PENDING] = True


async def send_continue(request: web.Request) -> None:
    """Send the deferred `100 Continue`, once, if the client is waiting for it."""
    if request.get(_CONTINUE_PENDING):
        request[_CONTINUE_PENDING] = False
        await request.writer.write(_CONTINUE)
        # As aiohttp's own expect handler: the response proper has not started.
        request.writer.output_size = 0


def continue_withheld(request: web.Request) -> bool:
    """The client is still waiting to send its body: the answer should close the connection."""
    return bool(request.get(_CONTINUE_PENDING))


async def within_idle_deadline(request: web.Request, read: Awaitable[T]) -> T:
    """`read` (one read of the body), or a 408 if no bytes come for the idle deadline."""
    timeout = request.app[appkeys.SETTINGS].body_idle_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await read
    except TimeoutError:
        raise RequestTimeout(
            f"No request body bytes arrived for {timeout:g} seconds", code="body_timeout"
        ) from None


async def body_chunks(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """The raw body in chunks of at most `size` bytes.

    The deferred `100 Continue` is sent at the first pull, so whatever the
    consumer checks before pulling (declared size, quota) is checked first.
    When the body breaks off, the bytes gathered so far are yielded before the
    error is raised, at the next pull — a cancellation included: a consumer
    that fails with an error of its own in between (a 413 on that chunk) ends
    with that error instead of the cancellation.
    """
    await send_continue(request)
    # A read returns what has arrived, often a fraction of `size`: gather a chunk
    # first, so storage gets few, large writes (one thread hop each on local
    # disk), joined once (a bytearray grown and then copied out was two copies).
    parts: list[bytes] = []
    have = 0
    first = True
    while True:
        try:
            chunk = await within_idle_deadline(request, request.content.read(size - have))
        except (Exception, asyncio.CancelledError) as exc:
            # The body broke off (a hang-up, a stall, broken framing; a hang-up
            # cancels the handler): what was gathered arrived whole, so it goes out
            # before the error does — a resumable upload keeps it; a plain one is
            # aborted either way. The error, cancellation included, is raised at
            # the next pull.
            if parts:
                pending, parts = b"".join(parts), []
                yield pending
            if isinstance(exc, RequestPayloadError):
                raise BadRequest("The request body is malformed", code="invalid_body") from None
            raise
        if not chunk:
            if parts:
                yield b"".join(parts)
            return
        if first or (not parts and len(chunk) == size):
            # The first bytes go at once (sniffing, and the upload starts), and a
            # whole chunk needs no copy.
            first = False
            yield chunk
            continue
        parts.append(chunk)
        have += len(chunk)
        if have >= size:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts = []
            have = 0


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body up to `limit` bytes (one read() returns only what has arrived so far)."""
    await send_continue(request)
    parts: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = await within_idle_deadline(request, request.content.read(limit - size))
        except RequestPayloadError:
            raise BadRequest("The request body is malformed", code="invalid_body") from None
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
