"""The `Bus`: how job and video events reach the WebSockets of their user.

`publish(event)` is synchronous and never blocks or raises: the job runner
calls it on its hot path. Sockets `subscribe(user_id, deliver)` with a
synchronous `deliver` that only queues (see `EventQueue`).

- `InProcessBus`: delivery inside this process; right for one instance.
- `RedisBus`: also carries every event to the other instances through one
  Redis pub/sub channel. Local sockets are served directly (no round trip,
  and unaffected while Redis is away); messages an instance sent itself are
  skipped when they come back. Events published while Redis is unreachable do
  not reach other instances; a reconnecting page catches up from its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.settings import Settings
from server.live.events import SharedEvent
from server.logs import get_logger

log = get_logger("frameflow.live")

Event = dict[str, Any]
Deliver = Callable[[Event], None]

DEFAULT_CHANNEL = "frameflow:events"
# Events waiting to go to Redis; beyond this (Redis down for long) new ones are dropped.
OUTBOX_SIZE = 10_000
RETRY_MIN_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0
FLUSH_SECONDS = 2.0


class Subscription:
    def __init__(self, bus: Bus, user_id: str, deliver: Deliver) -> None:
        self.bus = bus
        self.user_id = user_id
        self.deliver = deliver

    def close(self) -> None:
        self.bus._unsubscribe(self)


class Bus:
    """In-process delivery; subclasses add transport to other instances."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, user_id: str, deliver: Deliver) -> Subscription:
        sub = Subscription(self, user_id, deliver)
        self._subscribers.setdefault(user_id, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.user_id]

    def subscriber_count(self, user_id: str | None = None) -> int:
        """Subscriptions in this process: of `user_id`, or of everyone."""
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: Event) -> None:
        self._deliver_local(event)

    def _deliver_local(self, event: Event) -> None:
        user_id = event.get("user_id")
        if not isinstance(user_id, str):
            log.warning("bus_event_without_user", event_type=event.get("type"))
            return
        shared = SharedEvent(event)
        for sub in list(self._subscribers.get(user_id, ())):
            try:
                sub.deliver(shared)
            except Exception:
                # One broken socket must not keep the event from the others.
                log.exception("bus_deliver_failed", event_type=event.get("type"))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class InProcessBus(Bus):
    pass


class RedisBus(Bus):
    def __init__(self, url: str, channel: str = DEFAULT_CHANNEL) -> None:
        super().__init__()
        self.channel = channel
        self.instance_id = uuid.uuid4().hex
        self.client_name = f"frameflow-bus-{self.instance_id[:12]}"
        # Not decoding: payloads are JSON bytes, parsed as such.
        self._redis = aioredis.from_url(
            url,
            socket_keepalive=True,
            socket_connect_timeout=5,
            client_name=self.client_name,  # tells its connections apart in CLIENT LIST
        )
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(OUTBOX_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        # Set while subscribed (tests wait for it; events before it are not received).
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        # Loud at start-up: a wrong REDIS_URL should stop the server, not fail quietly.
        await self._redis.ping()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="bus-send"),
            asyncio.create_task(self._receive_loop(), name="bus-receive"),
        ]

    async def close(self) -> None:
        # What the runner published while stopping (jobs handed back) still goes out.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_SECONDS):
                await self._outbox.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._redis.aclose()

    def publish(self, event: Event) -> None:
        self._deliver_local(event)
        try:
            payload = json.dumps({"origin": self.instance_id, "event": event}).encode()
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("bus_outbox_full", event_type=event.get("type"))
        except (TypeError, ValueError):
            log.exception("bus_event_not_json", event_type=event.get("type"))

    async def _send_loop(self) -> None:
        delay = RETRY_MIN_SECONDS
        while True:
            payload = await self._outbox.get()
            while True:  # in order: retry this one before the next
                try:
                    await self._redis.publish(self.channel, payload)
                    delay = RETRY_MIN_SECONDS
                    self._outbox.task_done()
                    break
                except (RedisError, OSError) as exc:
                    log.warning("bus_publish_failed", error=str(exc) or type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _receive_loop(self) -> None:
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                await self._receive()
            except (RedisError, OSError) as exc:
                log.warning("bus_subscription_lost", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _receive(self) -> None:
        """Hold one subscription until it breaks (the loop then subscribes again)."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None and message.get("type") == "message":
                    self._on_message(message["data"])
        finally:
            self.subscribed.clear()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    def _on_message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            origin, event = message["origin"], message["event"]
        except (ValueError, TypeError, KeyError):
            log.warning("bus_message_malformed")
            return
        if origin != self.instance_id and isinstance(event, dict):
            self._deliver_local(event)


@contextlib.asynccontextmanager
async def open_bus(settings: Settings) -> AsyncIterator[Bus]:
    bus: Bus = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
    try:
        await bus.start()
        yield bus
    finally:
        await bus.close()
