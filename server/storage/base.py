"""The storage interface every backend implements, and the rules they share.

Handlers and services code against `Storage` only; whether bytes land on the
local disk or in an S3 bucket is decided once, in `open_storage`. The pieces
that must behave identically on both backends (key validation, range
arguments, abort-on-exit of writers) live here so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

# S3 limits keys to 1024 bytes of UTF-8; the local backend keeps the same limit
# so a key that works in development also works in production.
MAX_KEY_BYTES = 1024
# The local backend's temp directory lives inside the objects root; no key may
# name it, or a key could collide with an in-progress upload.
RESERVED_TOP_LEVEL = ".tmp"
DEFAULT_CHUNK_SIZE = 256 * 1024
# Objects per page of `list_prefix` (S3's own maximum per ListObjectsV2 call).
LIST_PAGE_SIZE = 1000
# How often a local append fsyncs and hands back a durable state, by default.
DEFAULT_CHECKPOINT_BYTES = 8 * 1024 * 1024


class StorageError(Exception):
    """Anything that went wrong talking to the object store."""


class ObjectNotFound(StorageError):
    """The key does not name an object."""


class StorageUnavailable(StorageError):
    """The store cannot be reached or used right now (network, credentials, bucket)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime  # tz-aware UTC


class ObjectWriter(Protocol):
    """One object being written. Not safe for concurrent use by several tasks.

    Nothing is visible under the key until `commit()` returns. `abort()` is
    idempotent, is a no-op after a successful commit, and removes everything
    the writer created (temp file, multipart upload). If `commit()` itself is
    cancelled, the object may or may not have become visible.
    """

    bytes_written: int

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> ObjectInfo: ...

    async def abort(self) -> None: ...


@dataclass(frozen=True)
class AppendPart:
    """One S3 multipart part of an appendable object."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class AppendState:
    """Where the bytes of an unfinished appendable object are (resumable uploads).

    The caller records it (in PostgreSQL) after each durable step and hands
    the latest recorded one back to every later call; backends keep no record
    of their own, so any instance can continue after any other one crashed.
    `size` bytes are stored durably; bytes a backend holds beyond it (a crash
    between writing and recording) are ignored and overwritten.
    """

    key: str  # where the finished object will be
    scratch_prefix: str  # temporary objects (S3's tail) live under it
    size: int = 0
    handle: str = ""  # local: temp file name; s3: multipart upload id
    parts: tuple[AppendPart, ...] = ()
    tail_key: str = ""  # s3: bytes past the last part (< one part), in a temporary object
    tail_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scratch_prefix": self.scratch_prefix,
            "size": self.size,
            "handle": self.handle,
            "parts": [[p.number, p.etag, p.size] for p in self.parts],
            "tail_key": self.tail_key,
            "tail_size": self.tail_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppendState:
        return cls(
            key=data["key"],
            scratch_prefix=data["scratch_prefix"],
            size=int(data["size"]),
            handle=data["handle"],
            parts=tuple(AppendPart(int(n), str(e), int(s)) for n, e, s in data["parts"]),
            tail_key=data["tail_key"],
            tail_size=int(data["tail_size"]),
        )


class Appender(Protocol):
    """Appends to an appendable object from its recorded `AppendState`.

    `write` returns a newer durable state whenever one arose on the way (local:
    every `checkpoint_bytes`, after fsync; S3: after each part), which the
    caller should record; `sync` makes everything written durable and returns
    its state. Bytes written after the last returned state belong to no state:
    closing without `sync` drops them (a failed checksum, a dropped client).
    """

    size: int  # bytes written, durable or not

    async def write(self, chunk: bytes) -> AppendState | None: ...

    async def sync(self, *, final: bool = False) -> AppendState:
        """`final`: nothing more will be appended (S3 ships the rest as the last part)."""
        ...


class Storage(Protocol):
    name: str  # "local" or "s3"

    # --- appendable objects (resumable uploads) ------------------------------

    async def start_append(
        self, key: str, content_type: str, scratch_prefix: str
    ) -> AppendState: ...

    def open_append(
        self, state: AppendState, *, checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    ) -> AbstractAsyncContextManager[Appender]:
        """Append after `state.size` (anything stored past it is dropped first)."""
        ...

    async def release_superseded(self, old: AppendState, new: AppendState) -> None:
        """After `new` is recorded: delete what only `old` used (S3: its tail object)."""
        ...

    async def finish_append(self, state: AppendState) -> ObjectInfo:
        """Make the object visible under `state.key`. Idempotent: a repeat after a
        crash returns the object the first call made."""
        ...

    async def discard_append(self, state: AppendState) -> None:
        """Remove every temporary the append made (temp file, multipart upload, tails);
        idempotent, and harmless after `finish_append` (the object stays)."""
        ...

    async def open_writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> ObjectWriter: ...

    def writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> AbstractAsyncContextManager[ObjectWriter]:
        """A writer that is aborted unless the body calls `commit()`.

        Aborts on an exception, on cancellation and on a plain exit without
        commit (for example an early return that rejects an upload).
        """
        ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        """Bytes `start..end` (inclusive; `end=None` means to the end), in chunks.

        This is an async generator: `ObjectNotFound` is raised by the first
        iteration, not by the call. Chunks are at most `chunk_size` bytes. A
        range starting at or past the end of the object yields nothing. Wrap it
        in `contextlib.aclosing` when you may stop early, so the underlying
        file or HTTP response is released at once rather than at GC time.
        """
        ...

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (a plain string prefix,
        as in S3, so "a/b" also matches "a/bc"). Returns how many were deleted."""
        ...

    def list_prefix(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        """Every object whose key starts with `prefix` (a plain string prefix, as in
        `delete_prefix`), streamed a page at a time, in no particular order.

        Memory stays at about one page whatever the number of objects. Objects of
        writers in progress are not listed; objects created or deleted while the
        listing runs may or may not be. Wrap it in `contextlib.aclosing` when you
        may stop early.
        """
        ...

    def local_path(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A path on the local disk holding the object's bytes, valid inside the block."""
        ...

    def sendfile_path(self, key: str) -> Path | None:
        """The object's own file when the kernel can send it (`sendfile`), else None.

        Local disk returns the file, S3 None. Delivery uses it to skip copying
        bytes through Python; callers must handle the file being gone.
        """
        ...

    async def presigned_get_url(
        self, key: str, seconds: int, *, content_type: str, disposition: str
    ) -> str | None:
        """A URL that lets anyone GET the object (ranges too) for `seconds`, answered
        with these Content-Type and Content-Disposition; None where there is none
        (local disk). Signing is local: no request to the store."""
        ...

    async def check(self) -> None:
        """Readiness probe: returns, or raises `StorageUnavailable` with a reason."""
        ...

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Remove leftovers of writers that never finished (crashes, lost aborts)."""
        ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Reject keys that could escape the objects root or mean different things per backend.

    Keys are made by the server, never taken from users, so anything unusual
    is a bug and fails loudly with ValueError.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    _check_chars(key)
    segments = key.split("/")
    if key.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    if segments[0] == RESERVED_TOP_LEVEL:
        raise ValueError(f"storage key uses the reserved prefix {RESERVED_TOP_LEVEL!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Like `validate_key`, but a trailing "/" is allowed; an empty prefix is not,
    so a bug can never turn `delete_prefix` into "delete everything"."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("storage prefix must be a non-empty string")
    validate_key(prefix.removesuffix("/"))
    return prefix


# NUL, control characters, DEL and backslash (a regex: keys are checked per request).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def _check_chars(key: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"storage key is longer than {MAX_KEY_BYTES} bytes")
    if _FORBIDDEN_CHARS.search(key):
        raise ValueError(f"storage key contains NUL, a control character or a backslash: {key!r}")


def check_range(start: int, end: int | None, chunk_size: int) -> None:
    """Arguments of `Storage.read`, checked the same way by both backends."""
    if start < 0:
        raise ValueError(f"read start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"read end must be >= start, got {start}-{end}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


# Aborts that outlived a second cancellation of their caller. Holding a strong
# reference keeps them from being garbage-collected half-way.
_background_aborts: set[asyncio.Task[None]] = set()


def _log_abort_outcome(task: asyncio.Task[None]) -> None:
    _background_aborts.discard(task)
    if task.cancelled():
        log.warning("storage writer abort was cancelled; leftovers are removed by the stale sweep")
    elif (exc := task.exception()) is not None:
        log.warning(
            "storage writer abort failed; leftovers are removed by the stale sweep",
            exc_info=exc,
        )


async def abort_quietly(writer: ObjectWriter) -> None:
    """Abort `writer`, surviving cancellation of the caller.

    Runs from `finally` blocks, often while a CancelledError is already on its
    way out. The abort runs as its own task behind `asyncio.shield`, so a second
    cancellation (a timeout on top of a client disconnect, say) only stops our
    waiting for it, not the abort. Failures are logged, not raised: the caller
    is usually propagating a more important exception, and the stale-upload
    sweep removes whatever a failed abort left behind.
    """
    task: asyncio.Task[None] = asyncio.ensure_future(writer.abort())
    _background_aborts.add(task)
    task.add_done_callback(_log_abort_outcome)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: S110 - logged by _log_abort_outcome
        pass


@asynccontextmanager
async def managed_writer(opening: Awaitable[ObjectWriter]) -> AsyncIterator[ObjectWriter]:
    """The `Storage.writer()` context manager, shared by the backends.

    `abort()` is a no-op after a successful commit, so calling it
    unconditionally on the way out is both correct and simplest.
    """
    writer = await opening
    try:
        yield writer
    finally:
        await abort_quietly(writer)
