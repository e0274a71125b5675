"""`InFlight`: a store in a worker thread outlives a cancelled request, and is waited for."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from server.inflight import InFlight


def slow_write(done: threading.Event, seconds: float = 0.3) -> None:
    time.sleep(seconds)
    done.set()


async def test_a_cancelled_request_does_not_cancel_the_store_and_settle_waits_for_it() -> None:
    done = threading.Event()
    order: list[str] = []

    async def request() -> None:
        store = InFlight("test_store")
        store.start(asyncio.to_thread(slow_write, done))
        try:
            await store.finish()
        finally:
            succeeded = await store.settle()
            # The writer would be aborted here: only once the write has ended.
            order.append(f"settled done={done.is_set()} ok={succeeded}")

    task = asyncio.create_task(request())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert order == ["settled done=True ok=True"]


async def test_finish_raises_the_steps_error_once_and_settle_logs_a_late_one() -> None:
    async def fails() -> None:
        raise OSError("disk full")

    store = InFlight("test_store")
    store.start(fails())
    with pytest.raises(OSError, match="disk full"):
        await store.finish()
    assert not store.pending and await store.settle()  # observed: nothing left to settle

    store.start(fails())
    await asyncio.sleep(0)  # it fails while nobody waits on it
    assert await store.settle() is False
    assert not store.pending


async def test_a_second_cancel_during_settle_leaves_the_step_for_the_next_settle() -> None:
    done = threading.Event()
    store = InFlight("test_store")
    store.start(asyncio.to_thread(slow_write, done))
    settling = asyncio.create_task(store.settle())
    await asyncio.sleep(0.05)
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await settling
    assert store.pending
    assert await store.settle() and done.is_set()
