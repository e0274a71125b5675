"""`EventQueue`: one socket's bounded outbox, kind to slow readers.

Progress is a level, not a history: a `job.progress` still waiting to be sent
is replaced in place by a newer one for the same job (latest wins), and may be
dropped to make room. Everything else (state changes, replies) is an edge the
client must see, so it is never dropped: when it cannot be queued the queue
overflows and the socket is closed instead (1013, try again later).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

PROGRESS = "job.progress"

Event = dict[str, Any]


class _Slot:
    """A place in line; a coalesced progress event is rewritten in its slot."""

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event: Event | None = event


class EventQueue:
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.overflowed = False
        self.closed = False
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
        if event.get("type") == PROGRESS:
            self._put_progress(event)
            return True
        job_id = event.get("job_id")
        if isinstance(job_id, str):
            # Later progress of this job must come after this event, not before.
            self._progress.pop(job_id, None)
        if self._size >= self.maxsize and not self._evict_progress():
            self.overflowed = True
            self.close()
            return False
        self._append(event)
        return True

    def _put_progress(self, event: Event) -> None:
        job_id = str(event.get("job_id"))
        pending = self._progress.get(job_id)
        if pending is not None:
            pending.event = event
        elif self._size < self.maxsize:
            self._progress[job_id] = self._append(event)
        # else: full; the next progress (or the final state) carries the news.

    def _evict_progress(self) -> bool:
        """Drop the oldest pending progress event to make room; False if there is none."""
        for job_id, slot in self._progress.items():
            del self._progress[job_id]
            slot.event = None
            self._size -= 1
            return True
        return False

    def _append(self, event: Event) -> _Slot:
        slot = _Slot(event)
        self._slots.append(slot)
        self._size += 1
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
            job_id = event.get("job_id")
            if event.get("type") == PROGRESS and self._progress.get(str(job_id)) is slot:
                del self._progress[str(job_id)]
            return event
        self._ready.clear()
        return None

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
