"""One step in flight beside a request's reads: a chunk stored while the next is read.

A body's chunk is stored while the next one is read (uploads, tus). The store
may be in a worker thread, which cannot be stopped halfway, so:
- waiting for it (`finish`) never passes a cancellation of the request on to
  it: the request's task is cancelled, the store runs to its end;
- on the way out (`settle`) a store still in flight is waited for before the
  writer or appender under it is aborted or closed; its error is logged, since
  the request is already ending with another one.

`together` runs the parts of one store side by side (the hash and the write,
each letting go of the GIL) and returns only when every part has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

from server.logs import get_logger

log = get_logger(__name__)


class InFlight:
    """At most one step at a time."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._step: asyncio.Future[Any] | None = None

    @property
    def pending(self) -> bool:
        return self._step is not None

    def start(self, step: Coroutine[Any, Any, None]) -> None:
        assert self._step is None, "finish the step in flight first"
        self._step = asyncio.ensure_future(step)

    async def finish(self) -> None:
        """Wait for the step in flight (if any); its error is raised here."""
        step = self._step
        if step is None:
            return
        try:
            await asyncio.shield(step)
        finally:
            if step.done():  # else the caller was cancelled: `settle` waits for it
                self._step = None

    async def settle(self) -> bool:
        """Wait for a step still in flight; whether it succeeded (True if none was)."""
        step = self._step
        if step is None:
            return True
        if not step.done():
            await asyncio.wait([step])  # cancelled here, the step stays for the next settle
        self._step = None
        if step.cancelled():
            return False
        error = step.exception()
        if error is not None:
            log.warning(f"{self._what}_failed", error=f"{type(error).__name__}: {error}")
            return False
        return True


async def together(*steps: Awaitable[Any]) -> list[Any]:
    """Run `steps` at once; their results, once every one has ended (a thread cannot be
    stopped halfway, so a file is never closed under a write still running). The first
    error is raised after that."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes
