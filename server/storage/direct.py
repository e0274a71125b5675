"""A file written front to back around the page cache (`O_DIRECT`), through one
aligned buffer: an object's temp file, or a resumable upload's file appended to.

A buffered write copies every byte into the page cache and leaves it dirty for
writeback and the fsync. Measured here (bench/upload_bench.py, `perf`), that
copy was the largest CPU cost of an upload, and its cost varied from run to
run by an order of magnitude: fresh page-cache pages are expensive to fault in
on a virtual machine. With `O_DIRECT` the device reads the bytes from our
buffer: they are copied once, into a reused, page-aligned staging buffer, and
written a whole block at a time; nothing is left dirty, so a sync finds
little to wait for, and an upload does not evict the media being served.

`O_DIRECT` wants the buffer, the file offset and the length aligned to the
device's logical block. The staging buffer is page-aligned (`mmap`) and maps
one block of the file (`BLOCK_BYTES`, starting at a multiple of it), so every
direct write is aligned. Bytes that must reach the kernel before their block
is full (the tail at commit, a resumable upload's checkpoint) are written
through the page cache by a second, plain descriptor and stay staged: when the
block fills, it goes out directly, those bytes again included. A file resumed
mid-block reads that block's start into the buffer first.

A filesystem without `O_DIRECT` (tmpfs before Linux 6.6, some overlay and
network filesystems) refuses to open with it, or refuses a write, with
EINVAL: the file is then written through the page cache, nothing lost. So is
the rest of a file after a short direct write.

One thread at a time writes, under a lock. `close` never waits for it (it is
called on the event loop, and a direct write lasts as long as the device
takes): with a write in flight it only asks, and the writing thread closes
the descriptors when it lets go, stopping at the next block. Never a write
into a reused descriptor number. After a failed write the file refuses
further writes: what reached it is unknown.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from collections.abc import Iterator
from pathlib import Path

# Bytes per direct write: large enough that a syscall per block is nothing,
# small enough to stay in the CPU's cache between the copy in and the write.
BLOCK_BYTES = 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere always buffered


class DirectFile:
    """Writes at the end of one file, `size` bytes long (blocking: call from a thread)."""

    def __init__(self, fd: int, direct_fd: int | None, *, block: int = BLOCK_BYTES) -> None:
        self._fd = fd  # plain: buffered writes, reads, fsync
        self._direct_fd = direct_fd  # O_DIRECT, or None: everything through the cache
        self._lock = threading.Lock()
        self._block = block
        self._buf: mmap.mmap | None = mmap.mmap(-1, block) if direct_fd is not None else None
        self._at = 0  # the file offset the buffer maps (a multiple of `block`)
        self._fill = 0  # bytes of that block staged
        self._flushed = 0  # ...of which the kernel already has (written plainly)
        self._close_asked = False
        self._failed = False
        self.size = 0

    @property
    def direct(self) -> bool:
        return self._buf is not None

    @classmethod
    def create(cls, path: Path, *, direct: bool = True, block: int = BLOCK_BYTES) -> DirectFile:
        """A new file at `path` (it must not exist). Only opens: cheap enough for the loop."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            return cls._with_direct(fd, path, direct, block)
        except BaseException:
            path.unlink(missing_ok=True)  # ours: created just now
            raise

    @classmethod
    def open_existing(
        cls, path: Path, *, direct: bool = True, block: int = BLOCK_BYTES
    ) -> DirectFile:
        """`path`, to append to after `resume_at` (FileNotFoundError if it is gone)."""
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        return cls._with_direct(fd, path, direct, block)

    @classmethod
    def _with_direct(cls, fd: int, path: Path, direct: bool, block: int) -> DirectFile:
        try:
            direct_fd = _open_direct(path) if direct else None
            try:
                return cls(fd, direct_fd, block=block)
            except BaseException:
                if direct_fd is not None:
                    os.close(direct_fd)
                raise
        except BaseException:
            os.close(fd)
            raise

    def fileno(self) -> int:
        return self._fd

    def resume_at(self, size: int) -> None:
        """Cut the file to `size` bytes (dropping anything past it) and write on from there."""
        with self._writing():
            os.ftruncate(self._fd, size)
            self.size = size
            if self._buf is None:
                return
            self._at = size - size % self._block
            head = os.pread(self._fd, size - self._at, self._at)
            self._buf[: len(head)] = head
            self._fill = self._flushed = len(head)  # already in the file
            if len(head) != size - self._at:  # cannot happen after ftruncate
                raise OSError(errno.EIO, f"short read resuming at {size}")

    def write(self, data: bytes | memoryview) -> None:
        """All of `data`, at the end of the file."""
        with self._writing():
            view = memoryview(data)
            while view and self._buf is not None:
                if self._close_asked:
                    raise OSError(errno.EBADF, "closed while writing")
                take = min(self._block - self._fill, len(view))
                self._buf[self._fill : self._fill + take] = view[:take]
                self._fill += take
                self.size += take
                view = view[take:]
                if self._fill == self._block:
                    self._write_block()
            if view:  # writing through the page cache
                _pwrite_all(self._fd, view, self.size)
                self.size += len(view)

    def flush(self) -> None:
        """Hand the kernel every byte written (through the page cache for a part block);
        an fsync of `fileno()` then makes them durable."""
        with self._writing():
            if self._buf is not None and self._fill > self._flushed:
                with memoryview(self._buf) as staged:
                    _pwrite_all(
                        self._fd, staged[self._flushed : self._fill], self._at + self._flushed
                    )
                self._flushed = self._fill

    def sync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        """Close now, or, while a thread writes, as soon as it lets go: never waits.
        Staged bytes not yet flushed are dropped (an abort)."""
        self._close_asked = True  # before trying: a writer letting go checks it after
        if not self._lock.acquire(blocking=False):
            return  # the writer closes on its way out (`_writing`)
        try:
            if self._fd >= 0:
                self._buffered_from_now()
                fd, self._fd = self._fd, -1
                os.close(fd)
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            with self._lock:
                if self._fd < 0 or self._close_asked:
                    raise OSError(errno.EBADF, "the file is closed")
                if self._failed:
                    raise OSError(errno.EIO, "an earlier write to this file failed")
                try:
                    yield
                except BaseException:
                    self._failed = True
                    raise
        finally:
            if self._close_asked:  # asked while we wrote: ours to do, now the lock is free
                self.close()

    # --- with the lock held --------------------------------------------------------

    def _write_block(self) -> None:
        """The staged block, full: written directly, or else through the page cache."""
        assert self._buf is not None and self._direct_fd is not None
        # Released on the way out, an error included: an mmap with a view still
        # exported cannot be closed.
        with memoryview(self._buf) as block:
            written = 0
            try:
                written = os.pwrite(self._direct_fd, block, self._at)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The filesystem took the flag but refuses the write: through the
                # page cache instead (nothing of the block was written).
            if written < self._block:  # refused, or short
                start = max(written, self._flushed)
                _pwrite_all(self._fd, block[start:], self._at + start)
        if written < self._block:
            self._buffered_from_now()
            return
        self._at += self._block
        self._fill = self._flushed = 0

    def _buffered_from_now(self) -> None:
        """No more direct writes: drop the staging buffer and the O_DIRECT descriptor.
        Staged bytes the kernel does not have are dropped with it: `_write_block` has
        written them first; `close` without `flush` discards them (an abort)."""
        buf, self._buf = self._buf, None
        direct_fd, self._direct_fd = self._direct_fd, None
        self._fill = self._flushed = 0
        if buf is not None:
            # Every view of it is released by now; if one ever were not, the
            # mapping is freed with that view rather than failing the close.
            with contextlib.suppress(BufferError):
                buf.close()
        if direct_fd is not None:
            os.close(direct_fd)


def _open_direct(path: Path) -> int | None:
    """A second descriptor of `path` with O_DIRECT, or None where the filesystem has none."""
    if not _O_DIRECT:
        return None
    try:
        return os.open(path, os.O_WRONLY | _O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    with memoryview(data) as whole:
        view = whole
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                offset += written
                view = view[written:]
        finally:
            view.release()  # not kept alive by an error's traceback
