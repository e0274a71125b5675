"""The bus and the per-socket queue: pure coalescing rules, in-process delivery, and
Redis pub/sub between two buses (skipped when REDIS_URL is not set)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.live.bus import InProcessBus, RedisBus
from server.live.queue import EventQueue


def progress(job: str, value: float) -> dict[str, Any]:
    return {"type": "job.progress", "job_id": job, "progress": value}


def state(job: str, kind: str = "job.started") -> dict[str, Any]:
    return {"type": kind, "job_id": job}


def drain(queue: EventQueue) -> list[dict[str, Any]]:
    out = []
    while (event := queue.get_nowait()) is not None:
        out.append(event)
    return out


def test_progress_of_a_job_collapses_to_the_latest_in_place() -> None:
    queue = EventQueue(8)
    queue.put(state("a", "job.queued"))
    for i in range(1000):
        assert queue.put(progress("a", i / 10))
        assert queue.put(progress("b", i / 10))
    queue.put(state("a", "job.succeeded"))
    assert drain(queue) == [
        state("a", "job.queued"),
        progress("a", 99.9),
        progress("b", 99.9),
        state("a", "job.succeeded"),
    ]


def test_progress_after_a_state_event_is_not_moved_before_it() -> None:
    queue = EventQueue(8)
    queue.put(progress("a", 10))
    queue.put(state("a", "job.queued"))  # e.g. re-queued after a lost lease
    queue.put(progress("a", 20))
    assert [e.get("progress") for e in drain(queue)] == [10, None, 20]


def test_state_events_evict_progress_then_overflow() -> None:
    queue = EventQueue(4)
    for job in "abcd":
        queue.put(progress(job, 1))
    # Full of progress: state events take their places, oldest progress first.
    assert queue.put(state("x"))
    assert queue.put(state("y"))
    assert len(queue) == 4
    assert queue.put(progress("e", 1))  # full: dropped, not an overflow
    assert queue.put(state("z")) and queue.put(state("w"))
    assert not queue.overflowed
    assert not queue.put(state("v"))  # no progress left to drop: the socket must go
    assert queue.overflowed and queue.closed


def padded(event: dict[str, Any], size: int) -> dict[str, Any]:
    """`event` grown to exactly `size` bytes of JSON."""
    event = {**event, "pad": ""}
    event["pad"] = "x" * (size - len(json.dumps(event)))
    return event


def test_the_queue_is_bounded_in_bytes_not_only_in_events() -> None:
    queue = EventQueue(1000, max_bytes=1000)
    for i in range(10):
        assert queue.put(padded(state(str(i)), 100))
    assert (len(queue), queue.bytes) == (10, 1000)
    assert not queue.put(padded(state("x"), 20))  # 1,020 bytes: over, nothing to drop
    assert queue.overflowed and queue.closed
    assert queue.bytes == 1000


def test_byte_room_is_made_from_progress_and_given_back_on_get() -> None:
    queue = EventQueue(1000, max_bytes=1000)
    for job in "abcd":
        assert queue.put(padded(progress(job, 1), 200))
    assert queue.put(padded(state("x"), 500))  # drops the two oldest progress events
    assert [e.get("job_id") for e in drain(queue)] == ["c", "d", "x"]
    assert queue.bytes == 0 and not queue.overflowed
    # Progress that does not fit is dropped, never an overflow.
    assert queue.put(padded(state("y"), 900))
    assert queue.put(padded(progress("e", 1), 200))
    assert [e.get("job_id") for e in drain(queue)] == ["y"]


def test_coalesced_progress_keeps_the_byte_count() -> None:
    queue = EventQueue(8, max_bytes=1000)
    queue.put(padded(progress("a", 1), 100))
    queue.put(padded(progress("a", 2), 300))  # replaced in place: 300 now, not 400
    assert (len(queue), queue.bytes) == (1, 300)
    queue.put(padded(state("b"), 600))
    queue.put(padded(progress("a", 3), 500))  # would not fit: the older value stays
    assert queue.bytes == 900
    assert [e.get("progress") for e in drain(queue)] == [2, None]


def test_an_empty_queue_takes_one_event_of_any_size() -> None:
    queue = EventQueue(8, max_bytes=100)
    assert queue.put(padded({"type": "snapshot"}, 5000))  # a big reply is not refused
    assert not queue.put(padded({"type": "pong"}, 50))  # ...but nothing more fits then
    assert queue.overflowed


def test_sizes_come_from_size_of() -> None:
    queue = EventQueue(8, max_bytes=10, size_of=lambda e: int(e["n"]))
    assert queue.put({"type": "a", "n": 6}) and queue.put({"type": "b", "n": 4})
    assert queue.bytes == 10
    assert not queue.put({"type": "c", "n": 1})


async def test_get_waits_and_close_wakes_it() -> None:
    queue = EventQueue(4)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put(state("a"))
    assert await getter == state("a")
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close()
    assert await getter is None


def test_in_process_bus_delivers_to_the_users_subscribers_only() -> None:
    bus = InProcessBus()
    got: dict[str, list[Any]] = {"a1": [], "a2": [], "b": []}
    sub = bus.subscribe("A", got["a1"].append)
    bus.subscribe("A", got["a2"].append)
    bus.subscribe("B", got["b"].append)

    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("a broken socket")

    bus.subscribe("A", broken)
    bus.publish({"type": "job.started", "user_id": "A"})
    bus.publish({"type": "job.started"})  # no user: goes nowhere
    sub.close()
    bus.publish({"type": "job.succeeded", "user_id": "A"})
    assert [e["type"] for e in got["a1"]] == ["job.started"]
    assert [e["type"] for e in got["a2"]] == ["job.started", "job.succeeded"]
    assert got["b"] == []


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    return url


async def wait_for(check: Any) -> None:
    async with asyncio.timeout(5):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_redis_bus_crosses_instances_once_and_resubscribes(redis_url: str) -> None:
    channel = f"frameflow:test:{uuid.uuid4().hex}"
    one, two = RedisBus(redis_url, channel), RedisBus(redis_url, channel)
    await one.start()
    await two.start()
    try:
        await asyncio.wait_for(asyncio.gather(one.subscribed.wait(), two.subscribed.wait()), 5)
        on_one: list[Any] = []
        on_two: list[Any] = []
        one.subscribe("U", on_one.append)
        two.subscribe("U", on_two.append)
        one.publish({"type": "job.started", "user_id": "U", "n": 1})
        await wait_for(lambda: len(on_two) == 1)
        assert on_one == on_two == [{"type": "job.started", "user_id": "U", "n": 1}]

        # Kill two's connections: it subscribes again and keeps receiving.
        admin = aioredis.from_url(redis_url)
        try:
            for c in await admin.client_list():
                if c.get("name") == two.client_name:
                    await admin.client_kill_filter(_id=c["id"])
        finally:
            await admin.aclose()
        async with asyncio.timeout(10):
            n = 1
            while not any(e["n"] > 1 for e in on_two):
                n += 1
                one.publish({"type": "job.progress", "user_id": "U", "n": n})
                await asyncio.sleep(0.1)
        assert [e["n"] for e in on_one] == list(range(1, n + 1))
    finally:
        await one.close()
        await two.close()
