"""Appendable objects (what tus uploads are stored as) on both backends.

Sizes cross S3's 5 MiB part minimum so that parts, tails and the small last
part are all exercised; "crashes" are appends whose state is never recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from server.storage import LocalStorage, S3Storage, Storage
from server.storage.base import AppendState
from tests import storage_fixtures
from tests.storage_fixtures import PART
from tests.test_storage import leftovers, payload, read_all

# The `storage` fixture (local, moto, SeaweedFS) shared with the other storage tests.
storage = storage_fixtures.storage
s3_endpoint = storage_fixtures.s3_endpoint

KEY = "videos/u/v/source"
SCRATCH = "tus/1/"


async def append(
    store: Storage, state: AppendState, data: bytes, *, final: bool = False, chunk: int = 300_001
) -> AppendState:
    """Append `data` and return the synced state, recording checkpoints as a caller would."""
    async with store.open_append(state, checkpoint_bytes=1024 * 1024) as appender:
        for i in range(0, len(data), chunk):
            durable = await appender.write(data[i : i + chunk])
            if durable is not None:
                assert durable.size <= appender.size
                await store.release_superseded(state, durable)
                state = durable
        new = await appender.sync(final=final)
    await store.release_superseded(state, new)
    return new


async def scratch_objects(store: Storage) -> list[str]:
    if isinstance(store, S3Storage):
        response = await store.client.list_objects_v2(Bucket=store.bucket, Prefix=SCRATCH)
        return [item["Key"] for item in response.get("Contents", [])]
    return []


async def test_appends_across_parts_and_tails_make_one_object(storage: Storage) -> None:
    data = payload(2 * PART + 1_234_567)
    state = await storage.start_append(KEY, "video/mp4", SCRATCH)
    # Uneven appends: a tail under one part, then one that crosses two parts, then the rest.
    cuts = [0, 1_000_000, 1_000_000 + PART + 777, len(data)]
    for start, end in itertools.pairwise(cuts):
        state = await append(storage, state, data[start:end], final=end == len(data))
        assert state.size == end
        # Only one tail object ever exists: superseded ones are released.
        assert len(await scratch_objects(storage)) <= 1
    info = await storage.finish_append(state)
    assert info.size == len(data)
    assert hashlib.sha256(await read_all(storage, KEY)).digest() == hashlib.sha256(data).digest()
    again = await storage.finish_append(state)  # a repeat after a crash finds the object
    assert again.size == len(data)
    await storage.discard_append(state)  # harmless once finished
    assert await read_all(storage, KEY) == data
    assert await leftovers(storage) == []
    assert await scratch_objects(storage) == []


async def test_unrecorded_bytes_are_dropped_on_the_next_open(storage: Storage) -> None:
    data = payload(PART + 500_000, seed=1)
    state = await storage.start_append(KEY, "video/mp4", SCRATCH)
    state = await append(storage, state, data[:700_000])
    # A "crash": bytes written (even a whole part shipped) but the state never recorded.
    async with storage.open_append(state) as appender:
        await appender.write(payload(PART + 10, seed=9))
        await appender.sync()
    state = await append(storage, state, data[700_000:], final=True)
    await storage.finish_append(state)
    assert await read_all(storage, KEY) == data
    await storage.discard_append(state)
    assert await leftovers(storage) == []
    assert await scratch_objects(storage) == []


async def test_a_length_declared_after_the_last_bytes(storage: Storage) -> None:
    """Finishing from a state whose tail was never sent as the last part."""
    data = payload(300_000, seed=2)
    state = await storage.start_append(KEY, "video/mp4", SCRATCH)
    state = await append(storage, state, data)
    info = await storage.finish_append(state)
    assert info.size == len(data)
    assert await read_all(storage, KEY) == data
    await storage.discard_append(state)
    assert await scratch_objects(storage) == []


async def test_empty_object_and_discard(storage: Storage) -> None:
    state = await storage.start_append(KEY, "video/mp4", SCRATCH)
    assert (await storage.finish_append(state)).size == 0
    other = await storage.start_append("videos/u/w/source", "video/mp4", SCRATCH)
    other = await append(storage, other, payload(1000))
    await storage.discard_append(other)
    await storage.discard_append(other)  # idempotent
    assert await leftovers(storage) == []
    assert await scratch_objects(storage) == []
    assert await storage.stat("videos/u/w/source") is None


async def test_local_handles_cannot_name_other_files(tmp_path: Path) -> None:
    store = await LocalStorage.open(tmp_path)
    bad = AppendState(key=KEY, scratch_prefix=SCRATCH, handle="../../etc/passwd")
    with pytest.raises(ValueError):
        await store.discard_append(bad)


def record_writeback(monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[int, int]], list[int]]:
    """Every `sync_file_range` asked for, as (offset, size), and the fds it was given."""
    from server.storage import writeback

    ranges: list[tuple[int, int]] = []
    fds: list[int] = []

    def fake_sync_file_range(fd: int, offset: Any, size: Any, flags: Any) -> int:
        fds.append(fd)
        ranges.append((offset.value, size.value))
        return 0

    monkeypatch.setattr(writeback, "_sync_file_range", fake_sync_file_range)
    return ranges, fds


def assert_writeback_covered(ranges: list[tuple[int, int]], fds: list[int], size: int) -> None:
    from server.storage.writeback import WRITEBACK_BYTES

    # Contiguous from 0, each at least WRITEBACK_BYTES, never past what was written.
    assert ranges and ranges[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))
    assert all(n >= WRITEBACK_BYTES for _, n in ranges)
    assert ranges[-1][0] + ranges[-1][1] <= size
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed by the worker (unless reused since: not here)


async def test_local_writeback_starts_in_the_background_and_owns_its_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the page cache (direct I/O off, or a filesystem without it), writeback
    is asked for range after range off the write path, on a duplicate fd that the
    worker closes: the appender's own file can close whatever it does."""
    from server.storage.writeback import WRITEBACK_BYTES

    ranges, fds = record_writeback(monkeypatch)
    store = await LocalStorage.open(tmp_path, direct_io=False)
    data = payload(5 * WRITEBACK_BYTES + 12_345)
    state = await store.start_append(KEY, "video/mp4", SCRATCH)
    state = await append(store, state, data, final=True, chunk=256 * 1024)
    await asyncio.sleep(0.2)  # let the last one finish
    assert_writeback_covered(ranges, fds, len(data))
    await store.finish_append(state)
    assert await read_all(store, KEY) == data


async def test_local_writer_starts_writeback_so_commit_has_little_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing through the page cache (direct I/O off, or a filesystem without it), a
    plain upload's writer asks for writeback as the file grows, as the appender
    does: the fsync at commit then waits for the last range, not the whole file."""
    from server.storage.writeback import WRITEBACK_BYTES

    ranges, fds = record_writeback(monkeypatch)
    store = await LocalStorage.open(tmp_path, direct_io=False)
    data = payload(4 * WRITEBACK_BYTES + 777)
    async with store.writer(KEY) as writer:
        for start in range(0, len(data), 256 * 1024):
            await writer.write(data[start : start + 256 * 1024])
        await asyncio.sleep(0.2)  # let the last one finish
        await writer.commit()
    assert_writeback_covered(ranges, fds, len(data))
    assert await read_all(store, KEY) == data


async def test_a_direct_writer_asks_for_no_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With O_DIRECT nothing is left dirty in the page cache: no writeback to start."""
    from server.storage.direct import DirectFile

    probe = DirectFile.create(tmp_path / "probe")
    supported = probe.direct
    probe.close()
    if not supported:
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    ranges, _fds = record_writeback(monkeypatch)
    store = await LocalStorage.open(tmp_path)
    data = payload(4 * 1024 * 1024 + 777)
    async with store.writer(KEY) as writer:
        for start in range(0, len(data), 256 * 1024):
            await writer.write(data[start : start + 256 * 1024])
        await writer.commit()
    assert ranges == []
    assert await read_all(store, KEY) == data
