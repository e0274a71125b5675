"""`DirectFile`: a file written front to back with O_DIRECT through an aligned buffer.

Whatever the write sizes, flushes (a tus checkpoint) and resumes (a tus PATCH
after a crash or a checksum failure), the file holds exactly the bytes
written; when the filesystem refuses O_DIRECT (at open, or a write), or a
direct write comes up short, the rest goes through the page cache and still
nothing is lost.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import itertools
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from server.storage import direct
from server.storage.direct import DirectFile
from server.storage.local import LocalStorage

# A small block, so a few KiB of writes cross many block boundaries (O_DIRECT
# needs the logical block size, at most a page, and a page-aligned buffer).
BLOCK = 8192
PROPERTY = hypothesis_settings(max_examples=80, deadline=None, derandomize=True, database=None)


def supports_direct(path: Path) -> bool:
    probe = DirectFile.create(path / ".probe")
    try:
        return probe.direct
    finally:
        probe.close()
        (path / ".probe").unlink()


def is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


# One step of a writer's life: write n bytes, flush (a checkpoint), or close and
# reopen at a size at most the flushed one (what a tus PATCH after a crash does).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(min_value=0, max_value=3 * BLOCK)),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("reopen"), st.integers(min_value=0, max_value=BLOCK)),
    ),
    max_size=12,
)


@PROPERTY
@given(steps=STEPS)
def test_the_file_holds_exactly_what_was_kept(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    path = tmp_path_factory.mktemp("direct") / "object"
    file = DirectFile.create(path, block=BLOCK)
    model = b""  # what the file must hold
    durable = 0  # bytes flushed: what a reopen may resume from
    try:
        for step, n in steps:
            if step == "write":
                data = os.urandom(n)
                file.write(data)
                model += data
            elif step == "flush":
                file.flush()
                durable = len(model)
            else:  # reopen: keep at most what was flushed, less `n` (a refused chunk)
                file.close()
                keep = max(0, durable - n)
                file = DirectFile.open_existing(path, block=BLOCK)
                file.resume_at(keep)
                model, durable = model[:keep], keep
            assert file.size == len(model)
        file.sync()
    finally:
        file.close()
    assert path.read_bytes() == model


def test_whole_blocks_are_written_directly_and_the_tail_through_the_cache(
    tmp_path: Path,
) -> None:
    if not supports_direct(tmp_path):
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    path = tmp_path / "object"
    file = DirectFile.create(path, block=BLOCK)
    data = os.urandom(3 * BLOCK + 100)
    file.write(data[:5000])
    assert os.fstat(file.fileno()).st_size == 0  # staged
    file.write(data[5000:])
    assert file.direct
    assert os.fstat(file.fileno()).st_size == 3 * BLOCK  # three whole blocks, directly
    assert not is_direct(file.fileno())  # the plain descriptor, for the tail and fsync
    file.sync()
    file.close()
    assert path.read_bytes() == data


def test_a_flushed_part_block_is_completed_directly(tmp_path: Path) -> None:
    """A checkpoint writes the part block through the cache; when the block fills, it
    goes out directly, the flushed bytes again included."""
    if not supports_direct(tmp_path):
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    path = tmp_path / "object"
    file = DirectFile.create(path, block=BLOCK)
    data = os.urandom(2 * BLOCK)
    file.write(data[:3000])
    file.flush()
    assert path.read_bytes() == data[:3000]
    file.write(data[3000:])
    assert file.direct
    file.close()  # nothing staged: everything went out in whole blocks
    assert path.read_bytes() == data


def test_a_filesystem_refusing_the_flag_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct.os, "open", refusing)
    data = os.urandom(2 * BLOCK + 3)
    file = DirectFile.create(tmp_path / "object", block=BLOCK)
    assert not file.direct
    file.write(data[:BLOCK])
    file.write(data[BLOCK:])
    file.sync()
    file.close()
    assert (tmp_path / "object").read_bytes() == data


@pytest.mark.parametrize("failure", ["refused", "short"])
def test_a_direct_write_refused_or_short_goes_on_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if not supports_direct(tmp_path):
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    real_pwrite = os.pwrite
    calls = {"direct": 0}

    def flaky(fd: int, data: Any, offset: int) -> int:
        if is_direct(fd):
            calls["direct"] += 1
            if calls["direct"] == 2:  # the second block
                if failure == "refused":
                    raise OSError(errno.EINVAL, "Invalid argument")
                return real_pwrite(fd, memoryview(data)[: BLOCK // 2], offset)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct.os, "pwrite", flaky)
    data = os.urandom(4 * BLOCK + 11)
    file = DirectFile.create(tmp_path / "object", block=BLOCK)
    file.write(data[:100])
    file.flush()  # a flushed prefix of the block that will fail
    file.write(data[100 : BLOCK + 1])
    file.write(data[BLOCK + 1 :])
    assert not file.direct
    assert calls["direct"] == 2  # nothing tried directly after the switch
    file.sync()
    file.close()
    assert (tmp_path / "object").read_bytes() == data


def test_after_a_failed_write_the_file_refuses_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reached the disk is unknown after an error: writing on could duplicate
    or lose bytes, so every later write and flush fails; close still works."""

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    file = DirectFile.create(tmp_path / "object", block=BLOCK)
    monkeypatch.setattr(direct.os, "pwrite", full)
    with pytest.raises(OSError) as raised:
        file.write(os.urandom(BLOCK))
        file.flush()
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    with pytest.raises(OSError, match="earlier write"):
        file.write(b"more")
    with pytest.raises(OSError, match="earlier write"):
        file.flush()
    file.close()
    file.close()  # idempotent


def test_a_failed_create_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(direct.mmap, "mmap", no_memory)
    with pytest.raises(OSError):
        DirectFile.create(tmp_path / "object", block=BLOCK)
    assert list(tmp_path.iterdir()) == []


def test_close_never_waits_for_a_write_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`close` runs on the event loop (an abort): with a thread in the middle of a
    slow write it returns at once, and that thread closes the file when it lets go,
    without writing another block."""
    in_write, let_go = threading.Event(), threading.Event()
    real_pwrite = os.pwrite
    writes: list[int] = []

    def slow(fd: int, data: Any, offset: int) -> int:
        writes.append(offset)
        in_write.set()
        let_go.wait(timeout=30)
        return real_pwrite(fd, data, offset)

    file = DirectFile.create(tmp_path / "object", block=BLOCK)
    fd = file.fileno()
    monkeypatch.setattr(direct.os, "pwrite", slow)
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            file.write(os.urandom(4 * BLOCK))
        except OSError as exc:
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert in_write.wait(timeout=30)
    file.close()  # returns while the write is stuck: it would hang here otherwise
    assert not let_go.is_set()
    os.fstat(fd)  # still open: the writer has it
    let_go.set()
    thread.join(timeout=30)
    assert writes == [0]  # stopped at the next block
    assert [exc.errno for exc in failures] == [errno.EBADF]
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the writer on its way out


def count_direct_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    real_pwrite = os.pwrite
    direct_writes: list[int] = []

    def counting(fd: int, data: Any, offset: int) -> int:
        if is_direct(fd):
            direct_writes.append(offset)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct.os, "pwrite", counting)
    return direct_writes


@pytest.mark.parametrize("direct_io", [True, False])
async def test_local_storage_objects_are_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_io: bool
) -> None:
    direct_writes = count_direct_writes(monkeypatch)
    storage = await LocalStorage.open(tmp_path, direct_io=direct_io)
    data = os.urandom(3 * 1024 * 1024 + 4321)
    async with storage.writer("a/object") as writer:
        for at in range(0, len(data), 700_000):
            await writer.write(data[at : at + 700_000])
        await writer.commit()
    assert storage.path_of("a/object").read_bytes() == data
    assert list(storage.tmp_dir.iterdir()) == []
    if direct_io and supports_direct(tmp_path):
        assert direct_writes == [0, 1 << 20, 2 << 20]  # the three whole MiB, directly
    else:
        assert direct_writes == []


@pytest.mark.parametrize("direct_io", [True, False])
async def test_an_append_resumed_mid_block_keeps_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_io: bool
) -> None:
    """The tus appender on local disk: PATCHes that end mid-block, checkpoints, a
    reopen at the recorded size dropping what was never recorded."""
    direct_writes = count_direct_writes(monkeypatch)
    storage = await LocalStorage.open(tmp_path, direct_io=direct_io)
    state = await storage.start_append("a/object", "video/mp4", "scratch/")
    data = os.urandom(5 * 1024 * 1024 + 99)
    cuts = [0, 700_001, 2_000_000, 3_500_003, len(data)]
    for start, end in itertools.pairwise(cuts):
        async with storage.open_append(state, checkpoint_bytes=1024 * 1024) as appender:
            await appender.write(data[start:end])
            await appender.write(b"never recorded")  # dropped by the next open
            state = await appender.sync()
            assert state.size == end + len(b"never recorded")
        state = dataclasses.replace(state, size=end)  # what the database recorded
    info = await storage.finish_append(state)
    assert info.size == len(data)
    assert storage.path_of("a/object").read_bytes() == data
    assert bool(direct_writes) == (direct_io and supports_direct(tmp_path))
