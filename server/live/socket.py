"""`GET /api/v1/ws`: a user's job and video events, live.

Protocol (README, "Live progress (WebSocket)"): Origin checked before the
upgrade; first message `auth` within `ws_auth_timeout_seconds` or close 4401;
then `ready`, a `snapshot` of unfinished jobs, and every event of the user,
narrowed by `subscribe`. One task reads the client, one writes from the
socket's `EventQueue`, so a slow reader only ever fills its own queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server import appkeys
from server.auth.middleware import require_scope
from server.auth.permissions import WEBSOCKET_SCOPE
from server.errors import Forbidden, HTTPError
from server.jobs.serializers import job_json
from server.live.events import SharedEvent
from server.live.origins import origin_allowed
from server.live.queue import EventQueue
from server.logs import get_logger

log = get_logger("frameflow.live")

UNAUTHORIZED = 4401  # 4000-4999 are the application's; 4401 mirrors HTTP 401
MAX_MESSAGE_BYTES = 64 * 1024
CLOSE_TIMEOUT_SECONDS = 5.0

Event = dict[str, Any]


class _Rejected(Exception):
    """The first message did not authenticate."""


async def websocket(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[appkeys.SETTINGS]
    if not origin_allowed(settings, request):
        raise Forbidden("This origin may not open a WebSocket", code="origin_not_allowed")
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_seconds,
        max_msg_size=MAX_MESSAGE_BYTES,
        timeout=CLOSE_TIMEOUT_SECONDS,
    )
    await ws.prepare(request)
    sockets = request.app[appkeys.SOCKETS]
    sockets.add(ws)
    try:
        try:
            user_id = await _authenticate(request, ws)
        except _Rejected as exc:
            await ws.close(code=UNAUTHORIZED, message=str(exc).encode())
            return ws
        await _LiveSocket(request, ws, user_id).run()
    finally:
        sockets.discard(ws)
    return ws


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> uuid.UUID:
    timeout = request.app[appkeys.SETTINGS].ws_auth_timeout_seconds
    try:
        msg = await ws.receive(timeout=timeout)
    except TimeoutError:
        raise _Rejected("authentication timed out") from None
    message = _parse(msg.data) if msg.type == WSMsgType.TEXT else None
    if message is None or message.get("type") != "auth":
        raise _Rejected("the first message must be auth")
    token = message.get("token")
    if not isinstance(token, str) or not token:
        raise _Rejected("auth needs a token")
    try:
        # Also refuses a valid token of an account deleted since it was issued,
        # and an API key without the scope to read the events it would stream.
        user = await request.app[appkeys.AUTH].authenticate(token)
        require_scope(user, WEBSOCKET_SCOPE)
        return user.id
    except HTTPError as exc:
        raise _Rejected(exc.error_code) from None


def _parse(data: Any) -> dict[str, Any] | None:
    try:
        message = json.loads(data)
    except (TypeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def _error(code: str, message: str) -> Event:
    return {"type": "error", "error": {"code": code, "message": message}}


class _LiveSocket:
    """One authenticated socket: bus subscription, outbox, reader and writer."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, user_id: uuid.UUID):
        self.app = request.app
        self.ws = ws
        self.user_id = user_id
        self.job_filter: str | None = None
        self.queue = EventQueue(self.app[appkeys.SETTINGS].ws_queue_size)
        self._closing: asyncio.Task[None] | None = None

    async def run(self) -> None:
        # Subscribed before the snapshot is read: nothing falls between the two.
        subscription = self.app[appkeys.BUS].subscribe(str(self.user_id), self._deliver)
        writer: asyncio.Task[None] | None = None
        try:
            await self.ws.send_json({"type": "ready", "user_id": str(self.user_id)})
            await self.ws.send_json(await self._snapshot())
            writer = asyncio.create_task(self._write_loop(), name="ws-writer")
            await self._read_loop()
        finally:
            subscription.close()
            self.queue.close()
            if writer is not None:
                writer.cancel()
                await asyncio.wait({writer})
                if not writer.cancelled() and writer.exception() is not None:
                    # Typically the peer went away mid-send; the reader saw it too.
                    log.info("ws_write_failed", error=repr(writer.exception()))
            if self._closing is not None:
                await self._closing  # bounded by CLOSE_TIMEOUT_SECONDS

    def _deliver(self, event: Event) -> None:
        """Called by the bus: filter, then queue (never blocks)."""
        if self.job_filter is not None and event.get("job_id") != self.job_filter:
            return
        self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        if not self.queue.put(event) and self._closing is None:
            log.warning("ws_slow_reader_closed", user_id=str(self.user_id))
            self._closing = asyncio.create_task(self._close_overflowed(), name="ws-overflow")

    async def _close_overflowed(self) -> None:
        # The writer may be stuck on a full socket; a close frame can still be
        # queued behind it, and the connection goes if the peer never reads.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.ws.close(
                    code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow", drain=False
                )

    async def _write_loop(self) -> None:
        while (event := await self.queue.get()) is not None:
            text = event.wire() if isinstance(event, SharedEvent) else json.dumps(_public(event))
            await self.ws.send_str(text)

    async def _read_loop(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                self._enqueue(_error("invalid_message", "messages must be JSON text"))
                continue
            message = _parse(msg.data)
            if message is None:
                self._enqueue(_error("invalid_message", "messages must be JSON objects"))
                continue
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            self._enqueue({"type": "pong"})
        elif kind == "snapshot":
            self._enqueue(await self._snapshot())
        elif kind == "subscribe":
            self._subscribe(message.get("job_id"))
        elif kind == "auth":
            self._enqueue(_error("already_authenticated", "this socket is authenticated"))
        else:
            self._enqueue(_error("unknown_type", f"unknown message type: {kind!r}"))

    def _subscribe(self, job_id: object) -> None:
        if job_id is None:
            self.job_filter = None
            return
        try:
            self.job_filter = str(uuid.UUID(str(job_id)))
        except ValueError:
            self._enqueue(_error("invalid_job_id", "job_id must be a UUID or null"))

    async def _snapshot(self) -> Event:
        jobs = await self.app[appkeys.JOBS].active_jobs(self.user_id)
        return {"type": "snapshot", "jobs": [job_json(j) for j in jobs]}


def _public(event: Event) -> Event:
    """The routing key stays on the server side."""
    if "user_id" in event and event.get("type") != "ready":
        return {k: v for k, v in event.items() if k != "user_id"}
    return event
