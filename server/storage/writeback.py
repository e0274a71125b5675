"""Start the kernel writing a file's new bytes out early, off the write path.

A file written into the page cache and fsynced at the end makes the fsync
wait for every byte at once: for a 1 GiB upload, ~0.4 s after the last byte
arrived (bench/upload_bench.py). Asking the kernel to start writeback of each
new range as the file grows (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, what
PostgreSQL's `*_flush_after` settings do) keeps the disk busy while the body
is still arriving, so the final fsync finds little left. It is no durability
step (the fsync is) and is never awaited: done inline it blocked the next
read of the body whenever the disk or the filesystem journal was busy.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.storage.direct import DirectFile

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback, do not wait for it
# Start writing out every this many new bytes.
WRITEBACK_BYTES = 1024 * 1024


def _load_sync_file_range() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.sync_file_range  # Linux only
    except (OSError, AttributeError, TypeError):
        return None


_sync_file_range = _load_sync_file_range()


def _start_writeback(fd: int, offset: int, size: int) -> None:
    """Have the kernel start writing a range out, without waiting for it. `fd` is a
    duplicate owned (and closed) here, so closing the writer's file never races
    with this call. Its result is ignored: a failure is only an optimisation not made."""
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


class Writeback:
    """Background writeback for one file that grows from `start` bytes, while it is
    written through the page cache: direct writes (`DirectFile.direct`) leave
    nothing dirty to write back."""

    def __init__(self, file: DirectFile, start: int, every: int = WRITEBACK_BYTES) -> None:
        self._file = file
        self._from = start  # where the next writeback starts
        self._every = every
        self._pending: asyncio.Future[None] | None = None

    def wrote(self, size: int) -> None:
        """The file now holds `size` bytes (in the kernel, or staged for a direct write)."""
        if _sync_file_range is None or self._file.direct or size - self._from < self._every:
            return
        if self._pending is not None and not self._pending.done():
            return  # still starting the last range; the next call covers this one too
        start, self._from = self._from, size
        try:
            fd = os.dup(self._file.fileno())
        except (OSError, ValueError):  # closed meanwhile
            return
        try:
            self._pending = asyncio.get_running_loop().run_in_executor(
                None, _start_writeback, fd, start, size - start
            )
        except RuntimeError:  # the executor is shut down: the server is stopping
            os.close(fd)
            return
        self._pending.add_done_callback(_ignore_outcome)


def _ignore_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio logs nothing
