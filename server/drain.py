"""Draining a PostgreSQL-backed queue (mail outbox, webhook deliveries): the loop and
the retry policy of its rows.

`DrainLoop` calls `run_once` again at once while batches come back full,
otherwise after a wake-up or `poll_seconds`. Errors are logged and never end
the loop; `stop()` cancels the task and waits for it.

`next_retry` is the one backoff policy of both queues: a failed row is due
again after base, 2·base, 4·base, ... seconds (capped), until it has had its
attempts.
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

RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 6 * 3600.0


def retry_delay(attempts: int, base: float, cap: float = RETRY_MAX_SECONDS) -> float:
    """Exponential backoff after the `attempts`-th failure: base, 2·base, 4·base, ..."""
    return min(base * 2 ** max(attempts - 1, 0), cap)


def next_retry(attempts: int, max_attempts: int, base: float = RETRY_BASE_SECONDS) -> float | None:
    """Seconds until the next try after the `attempts`-th failure; None once that was the last."""
    return None if attempts >= max_attempts else retry_delay(attempts, base)


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
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Cancel until it has ended, not once: a cancel can be lost on its way down
        # (3.11's wait_for drops one that meets the wake-up it waited for, and a library
        # under run_once may do the same), and the flag ends the loop at its next turn.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
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
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel (stop())
            # that arrives with the wake-up it waits for, and the loop never ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
