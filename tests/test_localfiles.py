"""server.localfiles: chunked reads of a local file that never leave it open."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from server.localfiles import file_chunks


async def test_chunks_cover_the_file_within_the_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 1200)
    got = [chunk async for chunk in file_chunks(path, 100_000)]
    assert b"".join(got) == path.read_bytes()
    assert max(len(c) for c in got) <= 100_000


async def test_a_cancelled_reader_leaves_no_file_open(tmp_path: Path) -> None:
    """An unclosed file would warn when collected (an error under filterwarnings)."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    started = asyncio.Event()

    async def consume() -> None:
        chunks = file_chunks(path, 10)
        async for _ in chunks:
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()
    await asyncio.sleep(0)  # the generator's aclose, scheduled by the loop, runs here
