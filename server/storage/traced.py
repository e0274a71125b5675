"""`TracedStorage`: a span around each call to a storage backend (tracing on only).

It wraps whichever backend `open_storage` chose, so both are traced alike and
neither knows about tracing. Span names: `storage.put` (a writer, from open
to commit or abort), `storage.get` (a read, from the first chunk to the
last), `storage.stat`, `storage.delete`, `storage.delete_prefix`,
`storage.list`, `storage.local_copy`, and for appendable (S3 multipart)
objects `storage.multipart.start|append|finish|discard|release`. With S3,
the aiohttp client instrumentation adds the HTTP requests under them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from opentelemetry import trace

from server.storage.base import (
    DEFAULT_CHECKPOINT_BYTES,
    DEFAULT_CHUNK_SIZE,
    Appender,
    AppendState,
    ObjectInfo,
    ObjectWriter,
    Storage,
)
from server.tracing import TRACER, SpanKind, span

_T = TypeVar("_T")


class TracedStorage:
    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.name = inner.name

    def _span(self, operation: str, key: str) -> AbstractAsyncContextManager[trace.Span]:
        return _async_span(
            f"storage.{operation}",
            {"frameflow.storage.backend": self.name, "frameflow.storage.key": key},
        )

    # --- appendable objects ---------------------------------------------------

    async def start_append(self, key: str, content_type: str, scratch_prefix: str) -> AppendState:
        async with self._span("multipart.start", key):
            return await self.inner.start_append(key, content_type, scratch_prefix)

    @asynccontextmanager
    async def open_append(
        self, state: AppendState, *, checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    ) -> AsyncIterator[Appender]:
        async with (
            self._span("multipart.append", state.key),
            self.inner.open_append(state, checkpoint_bytes=checkpoint_bytes) as appender,
        ):
            yield appender

    async def release_superseded(self, old: AppendState, new: AppendState) -> None:
        async with self._span("multipart.release", new.key):
            await self.inner.release_superseded(old, new)

    async def finish_append(self, state: AppendState) -> ObjectInfo:
        async with self._span("multipart.finish", state.key):
            return await self.inner.finish_append(state)

    async def discard_append(self, state: AppendState) -> None:
        async with self._span("multipart.discard", state.key):
            await self.inner.discard_append(state)

    # --- whole objects ----------------------------------------------------------

    async def open_writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        # The caller owns the writer's lifetime: only the opening is a span here.
        async with self._span("open_writer", key):
            return await self.inner.open_writer(key, content_type)

    @asynccontextmanager
    async def writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> AsyncIterator[ObjectWriter]:
        async with self._span("put", key) as current:
            async with self.inner.writer(key, content_type) as object_writer:
                yield object_writer
            current.set_attribute("frameflow.storage.bytes", object_writer.bytes_written)

    async def stat(self, key: str) -> ObjectInfo | None:
        async with self._span("stat", key):
            return await self.inner.stat(key)

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        # Current only while the backend makes each chunk (its S3 requests are children):
        # a context attached across a `yield` would leak into the consumer's.
        current = TRACER.start_span(
            "storage.get",
            attributes={
                "frameflow.storage.backend": self.name,
                "frameflow.storage.key": key,
                "frameflow.storage.range_start": start,
                "frameflow.storage.range_end": -1 if end is None else end,
            },
        )
        sent = 0
        try:
            async with aclosing(self.inner.read(key, start, end, chunk_size)) as chunks:
                while (chunk := await _next_in(current, chunks)) is not None:
                    sent += len(chunk)
                    yield chunk
        except Exception as exc:
            current.record_exception(exc)
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            current.set_attribute("frameflow.storage.bytes", sent)
            current.end()

    async def delete(self, key: str) -> None:
        async with self._span("delete", key):
            await self.inner.delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        async with self._span("delete_prefix", prefix) as current:
            deleted = await self.inner.delete_prefix(prefix)
            current.set_attribute("frameflow.storage.deleted", deleted)
            return deleted

    async def list_prefix(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        current = TRACER.start_span(
            "storage.list",
            attributes={"frameflow.storage.backend": self.name, "frameflow.storage.key": prefix},
        )
        try:
            async with aclosing(self.inner.list_prefix(prefix)) as infos:
                while (info := await _next_in(current, infos)) is not None:
                    yield info
        finally:
            current.end()

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        async with self._span("local_copy", key), self.inner.local_path(key) as path:
            yield path

    def sendfile_path(self, key: str) -> Path | None:
        return self.inner.sendfile_path(key)  # a path lookup, not a call worth a span

    async def presigned_get_url(
        self, key: str, seconds: int, *, content_type: str, disposition: str
    ) -> str | None:
        # Signing is local (no request to the store): nothing worth a span.
        return await self.inner.presigned_get_url(
            key, seconds, content_type=content_type, disposition=disposition
        )

    async def check(self) -> None:
        async with self._span("check", ""):
            await self.inner.check()

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        async with self._span("abort_stale_uploads", ""):
            return await self.inner.abort_stale_uploads(older_than)

    async def close(self) -> None:
        await self.inner.close()


@asynccontextmanager
async def _async_span(name: str, attributes: dict[str, str]) -> AsyncIterator[trace.Span]:
    with span(name, attributes, kind=SpanKind.CLIENT) as current:
        yield current


async def _next_in(current: trace.Span, items: AsyncGenerator[_T, None]) -> _T | None:
    """The next item of `items`, made with `current` as the current span; None at the end."""
    with trace.use_span(current, record_exception=False, set_status_on_exception=False):
        try:
            return await anext(items)
        except StopAsyncIteration:
            return None
