"""A new file written around the page cache (`O_DIRECT`), through one aligned buffer.

A buffered write copies every byte into the page cache and leaves it dirty for
writeback and the final fsync. Measured here (bench/upload_bench.py, `perf`),
that copy was the largest CPU cost of an upload, and its cost varied from run
to run by an order of magnitude: fresh page-cache pages are expensive to fault
in on a virtual machine. With `O_DIRECT` the device reads the bytes from our
buffer: the upload's bytes are copied once, into a reused, page-aligned
staging buffer, and written a whole block at a time; nothing is left dirty,
so the fsync at commit finds nothing to wait for.

`O_DIRECT` wants the buffer, the file offset and the length aligned to the
device's logical block. The staging buffer is page-aligned (`mmap`) and
written in whole blocks of `BLOCK_BYTES` from offset 0, so every direct write
is aligned; the tail (the last, partial block) is written through the page
cache after `O_DIRECT` is switched off. A filesystem without `O_DIRECT`
(tmpfs on older kernels, some overlay and network filesystems) refuses the
flag or the first write with EINVAL: the file is then written through the
page cache as before, with nothing lost.

One thread at a time writes; `close` takes the same lock, so a worker thread's
write in flight ends before the descriptor is closed (never a write into a
reused descriptor number).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

# Bytes per direct write: large enough that a syscall per block is nothing,
# small enough to stay in the CPU's cache between the copy in and the write.
BLOCK_BYTES = 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere always buffered


class DirectFile:
    """A file created for writing once, front to back (a temp file before its rename)."""

    def __init__(self, fd: int, *, direct: bool = True, block: int = BLOCK_BYTES) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._block = block
        self._buf: mmap.mmap | None = None
        self._fill = 0  # bytes staged in the buffer, not yet written
        self.direct = direct and _O_DIRECT != 0 and _set_direct(fd, on=True)
        if self.direct:
            self._buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs

    @classmethod
    def create(cls, path: Path, *, direct: bool = True, block: int = BLOCK_BYTES) -> DirectFile:
        """Create `path` (it must not exist). Opened plainly and switched to O_DIRECT
        after: an O_CREAT open that fails for O_DIRECT leaves the new file behind."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            return cls(fd, direct=direct, block=block)
        except BaseException:
            os.close(fd)
            raise

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes | memoryview) -> None:
        """All of `data`, after what was written before (blocks the calling thread)."""
        with self._lock:
            if self._buf is None:
                _write_all(self._fd, data)
                return
            view = memoryview(data)
            while view:
                take = min(self._block - self._fill, len(view))
                self._buf[self._fill : self._fill + take] = view[:take]
                self._fill += take
                view = view[take:]
                if self._fill == self._block:
                    self._write_staged()
                    if self._buf is None:  # switched to buffered writes
                        _write_all(self._fd, view)
                        return

    def flush(self) -> None:
        """Write what is staged: after this the kernel holds every byte (fsync next).
        The tail is not a whole block, so it goes through the page cache."""
        with self._lock:
            if self._buf is not None and self._fill:
                self._direct_off()
                self._write_staged()

    def sync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd < 0:
                return
            fd, self._fd = self._fd, -1
            self._drop_buffer()
            os.close(fd)

    # --- with the lock held --------------------------------------------------------

    def _write_staged(self) -> None:
        """Write the staged bytes: a whole block directly, or anything through the cache."""
        assert self._buf is not None
        # Both views released on the way out, an error included: an mmap with a
        # view still exported cannot be closed.
        with memoryview(self._buf) as whole, whole[: self._fill] as staged:
            written = 0
            if self.direct:
                try:
                    written = os.write(self._fd, staged)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    # The filesystem took the flag but refuses the write: through
                    # the page cache instead (nothing of the block was written).
                if written < len(staged):  # refused, or short: the offset is unaligned now
                    self._direct_off()
            if written < len(staged):
                _write_all(self._fd, staged[written:])
        self._fill = 0
        if not self.direct:
            self._drop_buffer()  # buffered from here on: no staging

    def _direct_off(self) -> None:
        if self.direct:
            _set_direct(self._fd, on=False)
            self.direct = False

    def _drop_buffer(self) -> None:
        buf, self._buf = self._buf, None
        self._fill = 0
        if buf is not None:
            # Every view of it is released by now; if one ever were not, the
            # mapping is freed with that view rather than failing the close.
            with contextlib.suppress(BufferError):
                buf.close()


def _set_direct(fd: int, *, on: bool) -> bool:
    """Switch O_DIRECT on or off; whether the descriptor now has it as asked."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    wanted = flags | _O_DIRECT if on else flags & ~_O_DIRECT
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, wanted)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # no O_DIRECT on this filesystem
            return False
        raise
    return True


def _write_all(fd: int, data: bytes | memoryview) -> None:
    with memoryview(data) as view:
        while view:
            written = os.write(fd, view)
            view = view[written:]
