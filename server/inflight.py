"""Work in flight beside a request's reads: wait for it to end before what it uses goes.

A body's chunk is stored while the next one is read (uploads, tus). When the
request ends early — a broken body, a stall, a cancellation — the store in
flight may be in a worker thread, which cannot be stopped halfway: the writer
or appender under it may be aborted or closed only once it has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def settled(step: asyncio.Future[Any]) -> bool:
    """Wait for `step` to end; whether it succeeded. Its error, if any, is retrieved
    (so asyncio logs nothing) but not raised: the caller is already on its way out."""
    if not step.done():
        await asyncio.wait([step])
    return not step.cancelled() and step.exception() is None
