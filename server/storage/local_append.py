"""Appendable objects on local disk: one temp file per object, appended and fsynced.

The file lives in the objects root's temp dir (`.tmp/append-<hex>`), so the
finishing rename never crosses a filesystem. Every open truncates it to the
recorded size first: bytes written but never recorded (a crash between an
fsync and the caller's commit, a chunk whose checksum failed) are dropped
before anything else is appended. A state is handed back only after fsync,
so a recorded size never counts bytes the disk does not hold.

Bytes are appended with O_DIRECT through an aligned buffer where the
filesystem has it (`server/storage/direct.py`): whole blocks go straight to
the device, so the fdatasync that ends a PATCH or a checkpoint finds little
left to wait for. Without it, writeback is started early, off the write path
(`server/storage/writeback.py`), to the same end.
"""

from __future__ import annotations

import asyncio
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
from server.storage.direct import DirectFile
from server.storage.local import _flush_and_sync, _replace_into_place
from server.storage.writeback import Writeback

if TYPE_CHECKING:
    from server.storage.local import LocalStorage

_HANDLE = re.compile(r"append-[0-9a-f]{32}")


def _flush_and_datasync(file: DirectFile) -> None:
    # fdatasync still writes the new file size (needed to read the data back),
    # but not the timestamps: enough for the bytes and the length to survive.
    file.flush()
    os.fdatasync(file.fileno())


class LocalAppender:
    def __init__(self, state: AppendState, file: DirectFile, checkpoint_bytes: int) -> None:
        self._state = state
        self._file = file  # writes go to a worker thread
        self._checkpoint_bytes = checkpoint_bytes
        self._synced = state.size
        self.size = state.size
        self._writeback = Writeback(file, state.size)

    async def write(self, chunk: bytes) -> AppendState | None:
        try:
            await asyncio.to_thread(self._file.write, chunk)
        except OSError as exc:  # disk full, I/O error
            raise StorageError(f"appending to {self._state.key!r}: {exc}") from exc
        self.size += len(chunk)
        self._writeback.wrote(self.size)
        if self.size - self._synced >= self._checkpoint_bytes:
            return await self.sync()
        return None

    async def sync(self, *, final: bool = False) -> AppendState:
        if self.size != self._synced:
            try:
                await asyncio.to_thread(_flush_and_datasync, self._file)
            except OSError as exc:
                raise StorageError(f"syncing {self._state.key!r}: {exc}") from exc
            self._synced = self.size
        return dataclasses.replace(self._state, size=self.size)


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


@asynccontextmanager
async def open_append(
    storage: LocalStorage, state: AppendState, checkpoint_bytes: int
) -> AsyncIterator[LocalAppender]:
    try:
        file = DirectFile.open_existing(_path(storage, state), direct=storage.direct_io)
    except FileNotFoundError:
        raise ObjectNotFound(f"append of {state.key!r}") from None
    try:
        await asyncio.to_thread(file.resume_at, state.size)
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
