"""Appendable objects on local disk: one temp file per object, appended and fsynced.

The file lives in the objects root's temp dir (`.tmp/append-<hex>`), so the
finishing rename never crosses a filesystem. Every open truncates it to the
recorded size first: bytes written but never recorded (a crash between an
fsync and the caller's commit, a chunk whose checksum failed) are dropped
before anything else is appended. A state is handed back only after fsync,
so a recorded size never counts bytes the disk does not hold.

Writeback is started early, off the write path: after each `WRITEBACK_BYTES`
appended, a worker thread asks the kernel to start writing the new range out
(`sync_file_range`, PostgreSQL's "writeback_flush_after"), so the fdatasync
that ends a PATCH finds little left to wait for — as a plain upload's single
fsync does after background writeback. It is not awaited: done inline (it
was, per 256 KiB chunk) it blocked the body's next read whenever the disk
or the filesystem journal was busy. It is no durability step; fdatasync is.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.storage.base import (
    AppendState,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    validate_key,
    validate_prefix,
)
from server.storage.local import _flush_and_sync, _replace_into_place

if TYPE_CHECKING:
    from server.storage.local import LocalStorage

_HANDLE = re.compile(r"append-[0-9a-f]{32}")
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback, do not wait for it
# Start writing out every this many appended bytes (in the background).
WRITEBACK_BYTES = 1024 * 1024


def _load_sync_file_range() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.sync_file_range  # Linux only
    except (OSError, AttributeError, TypeError):
        return None


_sync_file_range = _load_sync_file_range()


def _append(file: Any, chunk: bytes) -> None:
    file.write(chunk)
    file.flush()  # in the kernel's page cache: what writeback and fdatasync see


def _start_writeback(fd: int, offset: int, size: int) -> None:
    """Have the kernel start writing a range out, without waiting for it. `fd` is a
    duplicate owned (and closed) here, so closing the appender's file never races
    with this call. Not a durability step (fdatasync is): its result is ignored."""
    try:
        if _sync_file_range is not None:
            _sync_file_range(
                fd,
                ctypes.c_int64(offset),
                ctypes.c_int64(size),
                ctypes.c_uint(_SYNC_FILE_RANGE_WRITE),
            )
    finally:
        os.close(fd)


def _flush_and_datasync(file: Any) -> None:
    # fdatasync still writes the new file size (needed to read the data back),
    # but not the timestamps: enough for the bytes and the length to survive.
    file.flush()
    os.fdatasync(file.fileno())


class LocalAppender:
    def __init__(self, state: AppendState, file: Any, checkpoint_bytes: int) -> None:
        self._state = state
        self._file = file  # a plain binary file; writes go to a worker thread
        self._checkpoint_bytes = checkpoint_bytes
        self._synced = state.size
        self.size = state.size
        self._writeback_from = state.size  # where the next writeback starts
        self._writeback: asyncio.Future[None] | None = None

    async def write(self, chunk: bytes) -> AppendState | None:
        try:
            await asyncio.to_thread(_append, self._file, chunk)
        except OSError as exc:  # disk full, I/O error
            raise StorageError(f"appending to {self._state.key!r}: {exc}") from exc
        self.size += len(chunk)
        self._start_writeback()
        if self.size - self._synced >= self._checkpoint_bytes:
            return await self.sync()
        return None

    def _start_writeback(self) -> None:
        if _sync_file_range is None or self.size - self._writeback_from < WRITEBACK_BYTES:
            return
        if self._writeback is not None and not self._writeback.done():
            return  # still starting the last range; the next call covers this one too
        start, self._writeback_from = self._writeback_from, self.size
        try:
            fd = os.dup(self._file.fileno())
        except OSError:
            return
        self._writeback = asyncio.get_running_loop().run_in_executor(
            None, _start_writeback, fd, start, self.size - start
        )
        # Never awaited: a failure is only ever an optimisation not made.
        self._writeback.add_done_callback(_ignore_outcome)

    async def sync(self, *, final: bool = False) -> AppendState:
        if self.size != self._synced:
            try:
                await asyncio.to_thread(_flush_and_datasync, self._file)
            except OSError as exc:
                raise StorageError(f"syncing {self._state.key!r}: {exc}") from exc
            self._synced = self.size
        return dataclasses.replace(self._state, size=self.size)


def _ignore_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio logs nothing


def _path(storage: LocalStorage, state: AppendState) -> Path:
    # The handle comes back from the database: never let it name another path.
    if not _HANDLE.fullmatch(state.handle):
        raise ValueError(f"not a local append handle: {state.handle!r}")
    return storage.tmp_dir / state.handle


def _sync_new_file(file: Any, directory: Path) -> None:
    _flush_and_sync(file)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name itself survives a crash
    finally:
        os.close(fd)


async def start(storage: LocalStorage, key: str, scratch_prefix: str) -> AppendState:
    validate_key(key)
    validate_prefix(scratch_prefix)
    state = AppendState(key=key, scratch_prefix=scratch_prefix, handle=f"append-{uuid.uuid4().hex}")
    try:
        # Opened on the loop: an open() handed to a thread still runs if we are cancelled.
        file = open(_path(storage, state), "xb")  # noqa: ASYNC230, SIM115
    except OSError as exc:
        raise StorageUnavailable(f"cannot start appending {key!r}: {exc}") from exc
    try:
        await asyncio.to_thread(_sync_new_file, file, storage.tmp_dir)
    finally:
        file.close()
    return state


def _truncate_to(file: Any, size: int) -> None:
    file.truncate(size)
    file.seek(size)


@asynccontextmanager
async def open_append(
    storage: LocalStorage, state: AppendState, checkpoint_bytes: int
) -> AsyncIterator[LocalAppender]:
    try:
        file = open(_path(storage, state), "r+b")  # noqa: ASYNC230, SIM115
    except FileNotFoundError:
        raise ObjectNotFound(f"append of {state.key!r}") from None
    try:
        await asyncio.to_thread(_truncate_to, file, state.size)
        yield LocalAppender(state, file, checkpoint_bytes)
    finally:
        # Closed on the loop: a close sent to a thread can be cancelled and leak.
        file.close()


def _finish_sync(path: Path, final: Path, size: int) -> None:
    try:
        file = open(path, "r+b")  # noqa: SIM115
    except FileNotFoundError:
        return  # renamed into place by an earlier call
    with file:
        file.truncate(size)
        _flush_and_sync(file)
    _replace_into_place(path, final)


async def finish(storage: LocalStorage, state: AppendState) -> ObjectInfo:
    final = storage.path_of(state.key)
    try:
        await asyncio.to_thread(_finish_sync, _path(storage, state), final, state.size)
    except OSError as exc:
        raise StorageError(f"finishing {state.key!r}: {exc}") from exc
    info = await storage.stat(state.key)
    if info is None or info.size != state.size:
        raise ObjectNotFound(state.key)
    return info


async def discard(storage: LocalStorage, state: AppendState) -> None:
    await asyncio.to_thread(_path(storage, state).unlink, missing_ok=True)
