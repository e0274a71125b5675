"""What the remote adapters share: how they list themselves and estimate
(`ListedProvider`), HTTP answers turned into `ProviderError`s, `Retry-After`
read, and a streamed download.

Each call opens its own short-lived session: calls are rare (a submit, a poll
every few seconds, one download), and nothing outlives the attempt.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from server.generations.providers.base import (
    ErrorCode,
    GenerationSpec,
    ProviderError,
    ProviderInfo,
    credits_for,
)

CHUNK = 1024 * 1024


class ListedProvider:
    """A remote adapter's catalogue (class attributes), its price per second from
    the settings, and what follows from both: the listing and the estimate."""

    name: str
    models: tuple[str, ...]
    durations: tuple[int, ...]
    resolutions: tuple[str, ...] = ("720p", "1080p")
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")

    def __init__(self, *, base_url: str, price_per_second: float, timeout_seconds: float) -> None:
        self._base = base_url.rstrip("/")
        self._price = price_per_second
        self._timeout = timeout_seconds

    @property
    def configured(self) -> bool:
        raise NotImplementedError  # has the keys it needs

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            models=self.models,
            resolutions=self.resolutions,
            durations=self.durations,
            aspect_ratios=self.aspect_ratios,
            image_to_video=True,
            price_per_second=self._price,
            configured=self.configured,
        )

    def default_model(self) -> str:
        return self.models[0]

    def estimate(self, spec: GenerationSpec) -> int:
        return credits_for(self._price, spec.duration_seconds)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    content_policy: bool = False,
) -> ProviderError:
    """The user-facing error for a non-2xx answer."""
    if content_policy:
        return ProviderError("content_policy", f"{provider} refused the request: {message}")
    if status in (401, 403):
        return ProviderError(
            "provider_unavailable",
            f"{provider} rejected this server's credentials",
            retryable=False,
        )
    if status == 429 or status >= 500:
        return ProviderError(
            "provider_unavailable",
            f"{provider} is busy or failing ({status}): {message}",
            retry_after=retry_after(headers),
        )
    code: ErrorCode = "invalid_input"
    return ProviderError(code, f"{provider} refused the request: {message}")


def timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


def download_timeout(seconds: float) -> aiohttp.ClientTimeout:
    # No total: a large result may take long; a silent connection may not.
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


async def read_json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None


async def stream_download(
    provider: str,
    url: str,
    *,
    headers: Mapping[str, str],
    seconds: float,
) -> AsyncIterator[bytes]:
    """The body of `url` in chunks (never whole in memory)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=download_timeout(seconds)) as session,
            session.get(url, headers=dict(headers)) as resp,
        ):
            if resp.status != 200:
                raise error_for_status(provider, resp.status, resp.headers, "download failed")
            async for chunk in resp.content.iter_chunked(CHUNK):
                yield chunk
    except aiohttp.ClientError as exc:
        raise ProviderError(
            "provider_unavailable", f"{provider}: download failed ({exc})"
        ) from None
