"""Storing an operation's output files, and the content type each is served with."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.localfiles import file_chunks

COPY_CHUNK = 1024 * 1024


def guess_content_type(name: str) -> str:
    overrides = {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".m4s": "video/iso.segment",
        ".vtt": "text/vtt",
        ".mkv": "video/x-matroska",
        ".webp": "image/webp",
    }
    suffix = Path(name).suffix.lower()
    return overrides.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


async def store_file(
    ctx: JobContext, path: Path, name: str, content_type: str | None = None
) -> OutputFile:
    """Stream a local file into storage as output `name` (never whole in memory)."""
    key = ctx.output_key(name)
    content_type = content_type or guess_content_type(name)
    size = 0
    async with ctx.storage.writer(key, content_type) as writer:
        async for chunk in file_chunks(path, COPY_CHUNK):
            size += len(chunk)
            await writer.write(chunk)
            ctx.touch()
        await writer.commit()
    return OutputFile(name=name, storage_key=key, size=size, content_type=content_type)


async def store_tree(ctx: JobContext, root: Path, prefix: str) -> list[OutputFile]:
    """Store every file under `root` as `prefix/<relative path>`, in a stable order."""
    outputs = []
    files = await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))
    for path in files:
        outputs.append(await store_file(ctx, path, prefix + path.relative_to(root).as_posix()))
    return outputs
