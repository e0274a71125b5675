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


async def test_a_reader_cancelled_at_its_first_read_leaves_no_file_open(tmp_path: Path) -> None:
    """Cancelled while the first read is in its thread, as a job is at shutdown. With
    `aiofiles.open` that moment was the open itself, in a thread, and the opened file
    was dropped unclosed; collected, it warns, which fails this test (filterwarnings)."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    chunks = file_chunks(path, 10)
    first = asyncio.ensure_future(anext(chunks))
    await asyncio.sleep(0)  # the generator runs up to its first await
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await chunks.aclose()
    gc.collect()
