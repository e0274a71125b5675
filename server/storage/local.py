"""Objects as files under `<data_dir>/objects/`, for running without any service.

Writers stream into `objects/.tmp/<uuid>` and `os.replace` the finished file
into place, so a reader sees either no object or the whole object, never a
prefix of one. The temp dir is inside the objects root so the rename never
crosses a filesystem.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG
from typing import Any

import aiofiles
import aiofiles.os

from server import data_dirs, scratch
from server.storage.base import (
    DEFAULT_CHECKPOINT_BYTES,
    DEFAULT_CHUNK_SIZE,
    LIST_PAGE_SIZE,
    RESERVED_TOP_LEVEL,
    Appender,
    AppendState,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    StorageError,
    StorageUnavailable,
    abort_quietly,
    check_range,
    managed_writer,
    validate_key,
    validate_prefix,
)
from server.storage.direct import DirectFile
from server.storage.writeback import Writeback

_OPEN, _COMMITTED, _ABORTED = "open", "committed", "aborted"


class LocalWriter:
    """Streams one object into a temp file; `commit()` renames it into place."""

    def __init__(self, storage: LocalStorage, key: str, tmp_path: Path, file: DirectFile) -> None:
        self._storage = storage
        self._key = key
        self._tmp_path = tmp_path
        self._file = file  # writes go to a worker thread
        self._state = _OPEN
        self.bytes_written = 0
        self._writeback = Writeback(file, 0)

    async def write(self, chunk: bytes) -> None:
        if self._state != _OPEN:
            raise StorageError(f"writer for {self._key!r} is {self._state}")
        try:
            await asyncio.to_thread(self._file.write, chunk)
        except OSError as exc:  # disk full, I/O error
            raise StorageError(f"writing {self._key!r}: {exc}") from exc
        self.bytes_written += len(chunk)
        self._writeback.wrote(self.bytes_written)

    async def commit(self) -> ObjectInfo:
        if self._state != _OPEN:
            raise StorageError(f"writer for {self._key!r} is {self._state}")
        try:
            # fsync before the rename: otherwise a power cut can leave a
            # complete-looking name pointing at an empty or partial file.
            await asyncio.to_thread(_flush_and_sync, self._file)
            self._file.close()
            final = self._storage.path_of(self._key)
            await asyncio.to_thread(_replace_into_place, self._tmp_path, final)
            self._state = _COMMITTED
        except BaseException as exc:
            await abort_quietly(self)
            if isinstance(exc, OSError):
                raise StorageError(f"committing {self._key!r}: {exc}") from exc
            raise
        info = await self._storage.stat(self._key)
        if info is None:  # deleted concurrently between rename and stat
            raise ObjectNotFound(self._key)
        return info

    async def abort(self) -> None:
        if self._state != _OPEN:
            return
        self._state = _ABORTED
        try:
            # Closed here, not in a thread: a close handed to a thread can be
            # cancelled before it runs (shutdown, a canceled job) and leak.
            self._file.close()
        finally:
            await asyncio.to_thread(self._tmp_path.unlink, missing_ok=True)


def _flush_and_sync(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())


def _next_page(items: Iterator[ObjectInfo]) -> list[ObjectInfo]:
    page: list[ObjectInfo] = []
    for item in items:
        page.append(item)
        if len(page) == LIST_PAGE_SIZE:
            break
    return page


def _make_root(data_dir: Path) -> Path:
    # Absolute, so a later chdir cannot move the objects out from under us.
    root = data_dirs.objects_dir(data_dir.resolve())
    (root / RESERVED_TOP_LEVEL).mkdir(parents=True, exist_ok=True)
    return root


def _replace_into_place(tmp: Path, final: Path) -> None:
    # A concurrent delete may prune the (momentarily empty) parent directory
    # between our mkdir and the rename; recreate it and try again.
    for attempt in range(3):
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            return
        except FileNotFoundError:
            if attempt == 2 or not tmp.exists():
                raise
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
            # "a/b" and "a/b/c" cannot both be files on disk (S3 allows it).
            raise StorageError(f"cannot store object at {final}: {exc}") from exc


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, *, direct_io: bool = True) -> None:
        self.root = root  # <data_dir>/objects
        self.tmp_dir = root / RESERVED_TOP_LEVEL
        self.direct_io = direct_io  # new objects written with O_DIRECT (server/storage/direct.py)

    @classmethod
    async def open(cls, data_dir: Path, *, direct_io: bool = True) -> LocalStorage:
        root = await asyncio.to_thread(_make_root, Path(data_dir))
        return cls(root, direct_io=direct_io)

    def path_of(self, key: str) -> Path:
        return self.root / validate_key(key)

    def sendfile_path(self, key: str) -> Path | None:
        return self.path_of(key)

    async def presigned_get_url(
        self, key: str, seconds: int, *, content_type: str, disposition: str
    ) -> str | None:
        return None  # served from this disk (or by nginx: X-Accel-Redirect)

    async def open_writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> LocalWriter:
        validate_key(key)  # fail before creating anything
        tmp_path = self.tmp_dir / uuid.uuid4().hex
        try:
            # Opened on the loop (microseconds): an open() handed to a thread
            # still completes if this task is cancelled, and its file leaks.
            file = DirectFile.create(tmp_path, direct=self.direct_io)
        except OSError as exc:  # objects dir gone, read-only, out of inodes...
            raise StorageUnavailable(f"cannot start writing {key!r}: {exc}") from exc
        return LocalWriter(self, key, tmp_path, file)

    def writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> AbstractAsyncContextManager[ObjectWriter]:
        return managed_writer(self.open_writer(key, content_type))

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self.path_of(key)
        try:
            st = await aiofiles.os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(st.st_mode):
            return None  # a "directory" is only a key prefix, not an object
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    async def read(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> AsyncGenerator[bytes, None]:
        check_range(start, end, chunk_size)
        path = self.path_of(key)
        try:
            # Opened on the loop (microseconds): an open() handed to a thread
            # still runs if this task is cancelled, and its file would leak.
            file = open(path, "rb")  # noqa: ASYNC230, SIM115
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            await asyncio.to_thread(file.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await asyncio.to_thread(file.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            # Closed synchronously: a close sent to a worker thread can be
            # cancelled before it runs (e.g. at shutdown) and leak the handle.
            file.close()

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        await asyncio.to_thread(self._delete_and_prune, path)

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        return await asyncio.to_thread(self._delete_prefix_sync, prefix)

    async def list_prefix(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        validate_prefix(prefix)
        # One lazy directory walk, advanced a page at a time in a worker thread:
        # only the current page (and os.walk's stack) is ever held in memory.
        walk = self._list_sync(prefix)
        while page := await asyncio.to_thread(_next_page, walk):
            for info in page:
                yield info

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        # The real file: no copy. Callers only read it (ffmpeg input).
        if await self.stat(key) is None:
            raise ObjectNotFound(key)
        yield self.path_of(key)

    async def check(self) -> None:
        ok = await asyncio.to_thread(
            lambda: self.tmp_dir.is_dir() and os.access(self.tmp_dir, os.W_OK | os.X_OK)
        )
        if not ok:
            raise StorageUnavailable(f"{self.tmp_dir} is missing or not writable")

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        # mtime moves on every write, so only idle temp files age.
        return await asyncio.to_thread(scratch.remove_stale, [self.tmp_dir], cutoff)

    async def close(self) -> None:
        """Nothing to release: files are opened per operation."""

    # --- appendable objects: server/storage/local_append.py -------------------

    async def start_append(self, key: str, content_type: str, scratch_prefix: str) -> AppendState:
        from server.storage import local_append

        return await local_append.start(self, key, scratch_prefix)

    def open_append(
        self, state: AppendState, *, checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    ) -> AbstractAsyncContextManager[Appender]:
        from server.storage import local_append

        return local_append.open_append(self, state, checkpoint_bytes)

    async def release_superseded(self, old: AppendState, new: AppendState) -> None:
        """Nothing to release: one file holds every byte."""

    async def finish_append(self, state: AppendState) -> ObjectInfo:
        from server.storage import local_append

        return await local_append.finish(self, state)

    async def discard_append(self, state: AppendState) -> None:
        from server.storage import local_append

        await local_append.discard(self, state)

    # --- blocking helpers, run in a thread --------------------------------

    def _delete_and_prune(self, path: Path) -> bool:
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            # unlink() of a directory: EISDIR on Linux, EPERM (PermissionError) on macOS.
            if path.is_file():
                raise
            return False
        self._prune_empty_parents(path.parent)
        return True

    def _prune_empty_parents(self, directory: Path) -> None:
        """Remove directories that deletes left empty, so the tree does not grow forever."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone): stop here
                return
            directory = directory.parent

    def _delete_prefix_sync(self, prefix: str) -> int:
        # Walk only the deepest directory the prefix fully names, then match
        # keys as strings, which gives S3's prefix semantics ("a/b" matches "a/bc").
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        deleted = 0
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root and RESERVED_TOP_LEVEL in dirnames:
                dirnames.remove(RESERVED_TOP_LEVEL)
            for filename in filenames:
                path = Path(dirpath, filename)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and self._delete_and_prune(path):
                    deleted += 1
        return deleted

    def _list_sync(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root and RESERVED_TOP_LEVEL in dirnames:
                dirnames.remove(RESERVED_TOP_LEVEL)  # temp files of writers, not objects
            for filename in filenames:
                path = Path(dirpath, filename)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue  # deleted while we walked
                if S_ISREG(st.st_mode):
                    yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
