"""Reading a local file chunk by chunk without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path


async def file_chunks(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    """The file's bytes in chunks of at most `chunk_size`, each read in a worker thread.

    Opened here rather than with `aiofiles.open`: that opens in a worker thread too,
    and a caller cancelled meanwhile (a job cancelled, the app shutting down) dropped
    the opened file unclosed (a ResourceWarning later, an error under pytest). Opening
    a local file does not block; only the reads go to a thread.
    """
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, chunk_size):
            yield chunk
