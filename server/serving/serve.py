"""Serve one stored object over HTTP with ranges and conditional requests.

Used for sources and (later) job outputs alike. Only the requested range is
read from storage — on S3 the Range goes through to GetObject — so a seek in
a multi-gigabyte video costs what the player asks for.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from aiohttp import web

from server.errors import ClientClosedRequest, HTTPError, NotFound, RangeNotSatisfiable
from server.serving.conditional import (
    http_date,
    if_modified_since_not_modified,
    if_none_match_matches,
    if_range_allows,
    make_etag,
)
from server.serving.disposition import content_disposition
from server.serving.ranges import parse_range_header
from server.storage.base import ObjectNotFound, Storage

# Sources never change under a given id; a short private cache lets a player
# re-read without revalidating every segment of a seek.
CACHE_CONTROL = "private, max-age=300"
# Ranges up to this size are read whole (pread, or one storage read) and sent
# with the head in one write.
SMALL_RANGE = 256 * 1024


@dataclass(frozen=True)
class Offload:
    """Who sends the bytes once Frameflow has authorized the request.

    `accel_prefix` (local storage behind nginx): answer with `X-Accel-Redirect:
    <prefix><key>`, and nginx serves the file from its `internal` location with
    sendfile. `presign_seconds` (S3): answer 307 to a presigned GetObject URL
    valid that long. Either way that server owns ranges, 416s and the
    validators (nginx's ETag is mtime-size, S3's its own), consistently for
    every request of the object, as objects never change under a key.
    """

    accel_prefix: str = ""
    presign_seconds: int = 0
    # `X-Accel-Expires` of the accel answer: how long nginx may reuse it (0: not at all).
    accel_expires: int = 0


def accel_expires(deadline: float, now: float) -> int:
    """The `X-Accel-Expires` that keeps nginx's cached answer from outliving
    `deadline` (epoch seconds). nginx stores its own whole-second clock plus the
    value, and serves the copy while its clock is at most that: until the start of
    second floor(now) + value + 1, which must not pass the deadline."""
    return max(0, math.floor(deadline) - math.floor(now) - 1)


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    etag_token: str  # e.g. the content's SHA-256
    last_modified: datetime
    content_type: str
    filename: str


async def serve_stored_file(
    request: web.Request,
    storage: Storage,
    obj: StoredFile,
    *,
    download: bool = False,
    cache_control: str = CACHE_CONTROL,
    not_found: HTTPError | None = None,
    offload: Offload | None = None,
    check_exists: bool = False,
) -> web.StreamResponse:
    """`not_found`: the error when the object is gone. Local files are opened before
    anything else is decided; elsewhere the first bytes are read before any header,
    and `check_exists` (`obj` came from a link, not a lookup) asks the store about
    answers that read none (HEAD, 304, 416)."""
    path = storage.sendfile_path(obj.key)
    if offload is not None:
        handed = await _hand_off(storage, obj, path, offload, download, cache_control)
        if handed is not None:
            return handed
    if path is None:
        missing = not_found or NotFound()
        return await _answer(
            request, storage, obj, None, download, cache_control, missing, check_exists
        )
    try:
        # Opened on the loop: an open() of a local file takes microseconds,
        # a thread hop per request cost more than that under load.
        file = open(path, "rb")  # noqa: ASYNC230, SIM115
    except FileNotFoundError:
        # Deleted (its row is gone, or going): a 404 even to a conditional request.
        raise not_found or NotFound() from None
    try:
        missing = not_found or NotFound()
        return await _answer(request, storage, obj, file, download, cache_control, missing, False)
    finally:
        file.close()


async def _hand_off(
    storage: Storage,
    obj: StoredFile,
    path: Path | None,
    offload: Offload,
    download: bool,
    cache_control: str,
) -> web.Response | None:
    disposition = content_disposition(obj.filename, inline=not download)
    if path is not None and offload.accel_prefix:
        # nginx keeps Content-Type, Content-Disposition and Cache-Control from
        # this answer; the shipped location adds nosniff, CORS and the request id.
        return web.Response(
            headers={
                "X-Accel-Redirect": offload.accel_prefix + quote(obj.key, safe="/"),
                # nginx's cache of authorizations (deploy/nginx/frameflow.conf) keeps
                # this answer that long; nginx never passes X-Accel-* on to clients.
                "X-Accel-Expires": str(offload.accel_expires),
                "Content-Type": obj.content_type,
                "Content-Disposition": disposition,
                "Cache-Control": cache_control,
            }
        )
    if path is None and offload.presign_seconds > 0:
        url = await storage.presigned_get_url(
            obj.key,
            offload.presign_seconds,
            content_type=obj.content_type,
            disposition=disposition,
        )
        if url is not None:
            # 307 keeps the method (HEAD stays HEAD); clients resend Range to the target.
            return web.Response(
                status=307,
                headers={"Location": url, "Cache-Control": "no-store"},
            )
    return None


async def _answer(
    request: web.Request,
    storage: Storage,
    obj: StoredFile,
    file: BinaryIO | None,
    download: bool,
    cache_control: str,
    not_found: HTTPError,
    check_exists: bool,
) -> web.StreamResponse:
    async def exists_or_404() -> None:
        if check_exists and await storage.stat(obj.key) is None:
            raise not_found

    etag = make_etag(obj.etag_token)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(obj.last_modified),
        "Cache-Control": cache_control,
        "Content-Disposition": content_disposition(obj.filename, inline=not download),
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match_matches(request.headers.get("If-None-Match"), etag) or (
        "If-None-Match" not in request.headers
        and if_modified_since_not_modified(
            request.headers.get("If-Modified-Since"), obj.last_modified
        )
    ):
        await exists_or_404()
        return web.Response(status=304, headers=headers)

    byte_range = None
    if if_range_allows(request.headers.get("If-Range"), etag, obj.last_modified):
        try:
            byte_range = parse_range_header(request.headers.get("Range"), obj.size)
        except RangeNotSatisfiable:  # 416, `Content-Range: bytes */size`
            await exists_or_404()
            raise
    if byte_range:
        headers["Content-Range"] = byte_range.content_range(obj.size)
        start, end, length = byte_range.start, byte_range.end, byte_range.length
    else:
        start, end, length = 0, obj.size - 1, obj.size
    status = 206 if byte_range else 200
    headers["Content-Type"] = obj.content_type
    sending = request.method != "HEAD" and length > 0

    if sending and length <= SMALL_RANGE:
        # The whole range before any header, then head and body in one write:
        # for a player's small ranges this costs less than a header write plus
        # sendfile's future and writer callbacks (bench/range_bench.py), and
        # on S3 less than a header write plus chunk writes (py-spy, s3_bench).
        if file is not None:
            body = os.pread(file.fileno(), length, start)
        else:
            try:  # a deleted object is a 404
                body = await _read_all(storage, obj.key, start, end)
            except ObjectNotFound:
                raise not_found from None
        if len(body) != length:
            raise OSError(f"{obj.key}: short read ({len(body)} of {length} bytes)")
        small = web.Response(status=status, headers=headers, body=body)
        with _client_writes():
            await small.prepare(request)
            await small.write_eof()
        return small

    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    if file is None and sending:
        async with aclosing(storage.read(obj.key, start, end)) as chunks:
            try:
                # The first bytes before any header: a deleted object is a 404.
                first = await anext(chunks, b"")
            except ObjectNotFound:
                raise not_found from None
            with _client_writes():
                await resp.prepare(request)
                if first:
                    await resp.write(first)
            # Storage errors propagate as they are (a 500); only the
            # writes to the client mean "the client went away".
            async for chunk in chunks:
                with _client_writes():
                    await resp.write(chunk)
        with _client_writes():
            await resp.write_eof()
        return resp
    if not sending:
        await exists_or_404()
    with _client_writes():
        await resp.prepare(request)
    if file is not None and sending:
        await _sendfile(request, file, start, length)
    with _client_writes():
        await resp.write_eof()
    return resp


async def _read_all(storage: Storage, key: str, start: int, end: int) -> bytes:
    parts: list[bytes] = []
    async with aclosing(storage.read(key, start, end, chunk_size=SMALL_RANGE)) as chunks:
        async for chunk in chunks:
            parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


@contextmanager
def _client_writes() -> Iterator[None]:
    """A write to the client that fails means it hung up — every seek of a
    player does that — not that the server failed."""
    try:
        yield
    except ConnectionError as exc:  # BrokenPipe, ConnectionReset, aiohttp's closing transport
        raise ClientClosedRequest(str(exc) or type(exc).__name__) from None


async def _sendfile(request: web.Request, file: BinaryIO, start: int, length: int) -> None:
    """Let the kernel copy file bytes to the socket (Python copies when it can't, e.g. TLS).

    Measured with bench/range_bench.py: copying 64 KB ranges through Python
    cost ~40% of the loop's time; sendfile does not touch the bytes.
    """
    transport = request.transport
    if transport is None or transport.is_closing():  # loop.sendfile would raise RuntimeError
        raise ClientClosedRequest("Connection lost")
    with _client_writes():
        # fallback=True: asyncio reads and writes in chunks where sendfile is unsupported.
        await asyncio.get_running_loop().sendfile(transport, file, start, length)
