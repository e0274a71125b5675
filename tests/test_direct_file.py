"""`DirectFile`: a new file written with O_DIRECT through an aligned buffer.

Whatever the write sizes, the file holds exactly the bytes written; when the
filesystem refuses O_DIRECT (the flag, or a write), or a direct write comes up
short, the rest goes through the page cache and still nothing is lost.
"""

from __future__ import annotations

import errno
import fcntl
import os
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
PROPERTY = hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None)


def supports_direct(path: Path) -> bool:
    probe = DirectFile.create(path / ".probe")
    try:
        return probe.direct
    finally:
        probe.close()
        (path / ".probe").unlink()


def write_in(path: Path, data: bytes, sizes: list[int], **kwargs: Any) -> DirectFile:
    file = DirectFile.create(path, block=BLOCK, **kwargs)
    at = 0
    for size in sizes:
        file.write(data[at : at + size])
        at += size
    file.write(data[at:])
    file.sync()
    return file


@PROPERTY
@given(
    size=st.integers(min_value=0, max_value=5 * BLOCK + 7),
    sizes=st.lists(st.integers(min_value=0, max_value=3 * BLOCK), max_size=8),
)
def test_the_file_holds_exactly_what_was_written(
    tmp_path_factory: pytest.TempPathFactory, size: int, sizes: list[int]
) -> None:
    data = os.urandom(size)
    path = tmp_path_factory.mktemp("direct") / "object"
    write_in(path, data, sizes).close()
    assert path.read_bytes() == data


def test_whole_blocks_are_written_directly_and_the_tail_through_the_cache(
    tmp_path: Path,
) -> None:
    if not supports_direct(tmp_path):
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    path = tmp_path / "object"
    file = DirectFile.create(path, block=BLOCK)
    assert fcntl.fcntl(file.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    data = os.urandom(3 * BLOCK + 100)
    file.write(data[:5000])
    file.write(data[5000:])
    assert file.direct  # three whole blocks went out directly
    assert os.fstat(file.fileno()).st_size == 3 * BLOCK
    file.sync()
    assert not fcntl.fcntl(file.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    file.close()
    assert path.read_bytes() == data


def test_a_filesystem_refusing_the_flag_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fcntl = fcntl.fcntl

    def refusing(fd: int, cmd: int, arg: int = 0) -> Any:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(direct.fcntl, "fcntl", refusing)
    data = os.urandom(2 * BLOCK + 3)
    file = write_in(tmp_path / "object", data, [BLOCK, 5])
    assert not file.direct
    file.close()
    assert (tmp_path / "object").read_bytes() == data


@pytest.mark.parametrize("failure", ["refused", "short"])
def test_a_direct_write_refused_or_short_goes_on_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if not supports_direct(tmp_path):
        pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
    real_write = os.write
    calls = {"direct": 0}

    def flaky(fd: int, data: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            calls["direct"] += 1
            if calls["direct"] == 2:  # the second block
                if failure == "refused":
                    raise OSError(errno.EINVAL, "Invalid argument")
                return real_write(fd, memoryview(data)[: BLOCK // 2])
        return real_write(fd, data)

    monkeypatch.setattr(direct.os, "write", flaky)
    data = os.urandom(4 * BLOCK + 11)
    file = write_in(tmp_path / "object", data, [BLOCK + 1, BLOCK, 7])
    assert not file.direct
    assert calls["direct"] == 2  # nothing tried directly after the switch
    file.close()
    assert (tmp_path / "object").read_bytes() == data


def test_other_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    file = DirectFile.create(tmp_path / "object", block=BLOCK)
    monkeypatch.setattr(direct.os, "write", full)
    with pytest.raises(OSError) as raised:
        file.write(os.urandom(BLOCK))
        file.flush()
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    file.close()
    file.close()  # idempotent


@pytest.mark.parametrize("direct_io", [True, False])
async def test_local_storage_objects_are_the_same_either_way(
    tmp_path: Path, direct_io: bool
) -> None:
    storage = await LocalStorage.open(tmp_path, direct_io=direct_io)
    data = os.urandom(3 * 1024 * 1024 + 4321)
    async with storage.writer("a/object") as writer:
        for at in range(0, len(data), 700_000):
            await writer.write(data[at : at + 700_000])
        await writer.commit()
    assert storage.path_of("a/object").read_bytes() == data
    assert list((storage.tmp_dir).iterdir()) == []
