"""A background loop that drains a PostgreSQL-backed queue (mail outbox, webhook deliveries).

It calls `run_once` again at once while batches come back full, otherwise
after a wake-up or `poll_seconds`. Errors are logged and never end the loop;
`stop()` cancels the task and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from server.logs import get_logger

log = get_logger("frameflow.drain")

# A database or network hiccup: worth a warning, then the next poll.
TRANSIENT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DrainLoop:
    def __init__(
        self, name: str, run_once: Callable[[], Awaitable[int]], *, batch: int, poll_seconds: float
    ) -> None:
        self.name = name
        self.run_once = run_once
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except TRANSIENT_ERRORS as exc:
                log.warning("drain_error", loop=self.name, error=str(exc) or type(exc).__name__)
                claimed = 0
            except Exception:
                log.exception("drain_crashed_once", loop=self.name)
                claimed = 0
            if claimed >= self.batch:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
