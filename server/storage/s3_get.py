"""Ranged GetObjects by presigned URL over a plain aiohttp session.

Profiled with py-spy under bench/s3_bench.py (64 KB ranges, 8 clients), a
`get_object` call through aiobotocore spent most of its time outside the
network: the event hooks, the endpoint-ruleset resolver, the user-agent
builder, SigV4 signing of each request, parameter validation and the
response parser (which runs dateutil on `Last-Modified`) — about as much of
the event loop as the HTTP exchange itself and the whole of aiohttp's
serving. None of it depends on the range: a URL presigned once for a key
(botocore's own signer, SigV4, query-string auth) serves every range of it,
because the `Range` header is not part of the signature.

So each key's GetObject URL is presigned once and reused while young, and a
read is one `GET` with `Range` on a pooled session. Every read still goes to
the store: a deleted object is a 404 at once (nothing is cached but the
signature). A URL the store refuses (403: credentials rotated, clock moved)
is signed afresh once. Connection errors and 5xx answers are retried like
botocore's "standard" mode, before any byte reaches the caller.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp

# Signed for this long; reused while younger than _REUSE_SECONDS, so a URL
# always has minutes left when it is sent (its expiry is checked by the store
# at the start of a request only).
PRESIGN_SECONDS = 900
_REUSE_SECONDS = 300
_MAX_URLS = 4096  # keys with a cached URL; the least recently used go first
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_MAX_BACKOFF = 20.0
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


class S3Refused(Exception):
    """The store answered a GetObject with an error status; `code` is its S3 code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"HTTP {status} {code}".strip())
        self.status = status
        self.code = code


class S3Unreachable(Exception):
    """No answer from the store (connection, timeout, truncated body)."""


Presigner = Callable[[str, int], Awaitable[str]]


class PresignedGets:
    def __init__(
        self,
        presign: Presigner,
        endpoint_url: str,
        *,
        max_attempts: int,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._presign = presign
        self._max_attempts = max(1, max_attempts)
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # The CA bundle and proxy botocore would use, looked up once: aiohttp's
        # trust_env would read ~/.netrc in a thread on every request.
        cafile = os.environ.get("AWS_CA_BUNDLE") or None
        self._proxy = _proxy_for(endpoint_url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections, ssl=ssl.create_default_context(cafile=cafile)
            ),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
            auto_decompress=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def _url(self, key: str) -> str:
        now = time.monotonic()
        cached = self._urls.get(key)
        if cached is not None and now - cached[1] < _REUSE_SECONDS:
            self._urls.move_to_end(key)
            return cached[0]
        url = await self._presign(key, PRESIGN_SECONDS)
        self._urls[key] = (url, now)
        self._urls.move_to_end(key)
        while len(self._urls) > _MAX_URLS:
            self._urls.popitem(last=False)
        return url

    def forget(self, key: str) -> None:
        self._urls.pop(key, None)

    async def read(
        self, key: str, byte_range: str | None, chunk_size: int
    ) -> AsyncGenerator[bytes, None]:
        """The object's bytes (`byte_range`: a `Range` header value, or None for all).

        Raises S3Refused (an error status, with its code) or S3Unreachable."""
        headers = {"Range": byte_range} if byte_range else {}
        resigned = False
        attempt = 0
        while True:
            url = await self._url(key)
            try:
                response = await self._session.get(url, headers=headers, proxy=self._proxy)
            except (aiohttp.ClientError, TimeoutError) as exc:
                attempt += 1
                if attempt >= self._max_attempts:
                    raise S3Unreachable(_describe(exc)) from None
                await _backoff(attempt)
                continue
            if response.status < 300:
                break
            try:
                body = await response.content.read(4096)
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            finally:
                response.release()
            found = _CODE.search(body)
            refused = S3Refused(response.status, found.group(1).decode() if found else "")
            if response.status == 403 and not resigned:
                resigned = True  # an old signature; a new one says whether access is denied
                self.forget(key)
                continue
            attempt += 1
            if (
                response.status in _RETRY_STATUSES or refused.code == "SlowDown"
            ) and attempt < self._max_attempts:
                await _backoff(attempt)
                continue
            raise refused
        # Leaving this block releases the response even when the consumer stops
        # early (generator closed); aiohttp then closes a half-read connection
        # rather than returning it to the pool.
        async with response:
            while True:
                try:
                    chunk = await response.content.read(chunk_size)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise S3Unreachable(_describe(exc)) from None
                if not chunk:
                    return
                yield chunk


def _proxy_for(endpoint_url: str) -> str | None:
    parts = urlsplit(endpoint_url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme) or None


async def _backoff(attempt: int) -> None:
    # botocore's "standard" retry mode: full jitter on an exponential base.
    await asyncio.sleep(random.random() * min(_MAX_BACKOFF, 2.0 ** (attempt - 1)))


def _describe(exc: BaseException) -> str:
    # The class and the message, never the request URL (it carries a signature).
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if "X-Amz-" not in text else type(exc).__name__
