"""`EventQueue`: one socket's bounded outbox, kind to slow readers.

Progress is a level, not a history: a `job.progress` still waiting to be sent
is replaced in place by a newer one for the same job (latest wins), and may be
dropped to make room. Everything else (state changes, replies) is an edge the
client must see, so it is never dropped: when it cannot be queued the queue
overflows and the socket is closed instead (1013, try again later).

The bound is in events *and* bytes (as sent): events vary from a 20-byte
pong to a snapshot of many jobs, so a count alone does not bound memory. An
empty queue takes any one event, so a large reply is never refused outright.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

PROGRESS = "job.progress"

Event = dict[str, Any]


def json_size(event: Event) -> int:
    return len(json.dumps(event))


class _Slot:
    """A place in line; a coalesced progress event is rewritten in its slot."""

    __slots__ = ("event", "size")

    def __init__(self, event: Event, size: int) -> None:
        self.event: Event | None = event
        self.size = size


class EventQueue:
    def __init__(
        self,
        maxsize: int,
        max_bytes: int | None = None,
        *,
        size_of: Callable[[Event], int] = json_size,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.overflowed = False
        self.closed = False
        self.bytes = 0  # size of the live events
        self._size_of = size_of
        self._slots: deque[_Slot] = deque()
        self._size = 0  # live slots (evicted ones stay in the deque as holes)
        # job_id -> the slot of its pending progress event, oldest first.
        self._progress: dict[str, _Slot] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put(self, event: Event) -> bool:
        """Queue `event`; False when the queue overflowed (the socket must close)."""
        if self.closed:
            return not self.overflowed
        size = self._size_of(event)
        if event.get("type") == PROGRESS:
            self._put_progress(event, size)
            return True
        job_id = event.get("job_id")
        if isinstance(job_id, str):
            # Later progress of this job must come after this event, not before.
            self._progress.pop(job_id, None)
        while not self._fits(size):
            if not self._evict_progress():
                self.overflowed = True
                self.close()
                return False
        self._append(event, size)
        return True

    def _fits(self, size: int, replacing: int = 0) -> bool:
        if self._size == 0:
            return True
        if self.max_bytes is not None and self.bytes - replacing + size > self.max_bytes:
            return False
        return replacing > 0 or self._size < self.maxsize

    def _put_progress(self, event: Event, size: int) -> None:
        job_id = str(event.get("job_id"))
        pending = self._progress.get(job_id)
        if pending is not None:
            if self._fits(size, replacing=pending.size):
                pending.event = event
                self.bytes += size - pending.size
                pending.size = size
        elif self._fits(size):
            self._progress[job_id] = self._append(event, size)
        # else: full; the next progress (or the final state) carries the news.

    def _evict_progress(self) -> bool:
        """Drop the oldest pending progress event to make room; False if there is none."""
        for job_id, slot in self._progress.items():
            del self._progress[job_id]
            slot.event = None
            self._size -= 1
            self.bytes -= slot.size
            return True
        return False

    def _append(self, event: Event, size: int) -> _Slot:
        slot = _Slot(event, size)
        self._slots.append(slot)
        self._size += 1
        self.bytes += size
        self._ready.set()
        return slot

    def get_nowait(self) -> Event | None:
        """The next event, or None when nothing is queued."""
        while self._slots:
            slot = self._slots.popleft()
            event = slot.event
            if event is None:
                continue  # evicted
            self._size -= 1
            self.bytes -= slot.size
            job_id = event.get("job_id")
            if event.get("type") == PROGRESS and self._progress.get(str(job_id)) is slot:
                del self._progress[str(job_id)]
            return event
        self._ready.clear()
        return None

    async def wait(self) -> bool:
        """Wait until an event is queued (without taking it); False once closed."""
        while not self.closed and not self._size:
            self._ready.clear()
            await self._ready.wait()
        return not self.closed

    async def get(self) -> Event | None:
        """Wait for the next event; None once the queue is closed."""
        while not self.closed:
            event = self.get_nowait()
            if event is not None:
                return event
            await self._ready.wait()
        return None

    def close(self) -> None:
        self.closed = True
        self._ready.set()
