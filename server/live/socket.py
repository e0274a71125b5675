"""`GET /api/v1/ws`: a user's job and video events, live.

Protocol (README, "Live progress (WebSocket)"): Origin checked before the
upgrade; first message `auth` within `ws_auth_timeout_seconds` or close 4401;
at most `ws_max_sockets_per_user` sockets per user on this instance (one more
is closed 4429); then `ready`, a `snapshot` of unfinished jobs, and every
event of the user, narrowed by `subscribe`.

Delivery is built for fan-out (one job followed by many sockets): each event
is framed once (`SharedEvent.frame()`, no permessage-deflate) and, while the
socket keeps up — nothing queued, its transport not paused — written straight
to the transport by whoever publishes it: no task wakes up per socket per
event. Only what must wait (events before the snapshot, and everything while
the transport is paused because the client reads slowly) goes through the
socket's `EventQueue` (bounded in events and bytes) and its writer task, so a
slow reader only ever fills its own queue, and the bytes past the queue are
bounded by the transport's high-water mark plus one frame.

A socket lives no longer than its credentials: it is closed 4401 when its
access token expires, and at once when the session the token was issued in
ends (logout, a replayed refresh token), when the API key it authenticated
with is revoked, or when its account is disabled — the services publish
`session.revoked` on the bus, which reaches every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server import appkeys
from server.auth.middleware import require_scope
from server.auth.permissions import WEBSOCKET_SCOPE
from server.auth.tokens import AccessClaims
from server.errors import Forbidden, HTTPError
from server.jobs.serializers import job_json
from server.live.events import SESSION_REVOKED, SharedEvent
from server.live.origins import origin_allowed
from server.live.queue import EventQueue
from server.logs import get_logger

log = get_logger("frameflow.live")

# 4000-4999 are the application's; these mirror HTTP 401 and 429.
UNAUTHORIZED = 4401
TOO_MANY_SOCKETS = 4429
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
        # Off: one frame of an event goes to every socket as is; with deflate each
        # socket's compressor would have to encode every event again.
        compress=False,
    )
    await ws.prepare(request)
    sockets = request.app[appkeys.SOCKETS]
    sockets.add(ws)
    try:
        try:
            claims, api_key_id = await _authenticate(request, ws)
        except _Rejected as exc:
            await ws.close(code=UNAUTHORIZED, message=str(exc).encode())
            return ws
        await _LiveSocket(request, ws, claims, api_key_id).run()
    finally:
        sockets.discard(ws)
    return ws


async def _authenticate(
    request: web.Request, ws: web.WebSocketResponse
) -> tuple[AccessClaims, uuid.UUID | None]:
    """The token's claims, and the API key's id when a key authenticated."""
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
        if user.api_key_id is not None:
            # A key has no session to end and no access-token expiry: the socket
            # lives until it closes, the key is revoked or the account disabled.
            return AccessClaims(user_id=user.id, role=user.role), user.api_key_id
        return request.app[appkeys.TOKENS].decode_access(token), None
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

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        claims: AccessClaims,
        api_key_id: uuid.UUID | None,
    ):
        self.app = request.app
        self.ws = ws
        self.user_id = claims.user_id
        self.claims = claims
        self.api_key_id = api_key_id
        self.job_filter: str | None = None
        settings = self.app[appkeys.SETTINGS]
        self.queue = EventQueue(
            settings.ws_queue_size, settings.ws_queue_bytes, size_of=_frame_size
        )
        self._closing: asyncio.Task[None] | None = None
        # Where frames go without aiohttp's per-message path (public request API).
        self._transport = request.transport
        self._protocol = request.protocol
        self._drain = request.writer.drain
        # True from the snapshot until closing: events may then skip the queue.
        self._direct = False

    async def run(self) -> None:
        bus = self.app[appkeys.BUS]
        if (
            bus.subscriber_count(str(self.user_id))
            >= self.app[appkeys.SETTINGS].ws_max_sockets_per_user
        ):
            log.warning("ws_too_many_sockets", user_id=str(self.user_id))
            await self.ws.close(code=TOO_MANY_SOCKETS, message=b"too many sockets for this user")
            return
        # Subscribed before the session check and the snapshot: neither a
        # revocation nor an event falls between them and the subscription.
        subscription = bus.subscribe(str(self.user_id), self._deliver)
        expiry = (
            asyncio.get_running_loop().call_later(
                max(self.claims.expires_at - time.time(), 0),
                self._close_soon,
                UNAUTHORIZED,
                "token_expired",
            )
            if self.claims.expires_at  # 0: an API key, which has no access-token expiry
            else None
        )
        writer: asyncio.Task[None] | None = None
        try:
            if not await self._session_is_live():
                self._close_soon(UNAUTHORIZED, "session_revoked")
            if self._closing is not None:  # revoked or expired meanwhile
                return
            await self.ws.send_json({"type": "ready", "user_id": str(self.user_id)})
            snapshot = await self._snapshot()
            if self._closing is not None:
                return
            await self.ws.send_json(snapshot)
            writer = asyncio.create_task(self._write_loop(), name="ws-writer")
            self._direct = self._closing is None
            await self._read_loop()
        finally:
            self._direct = False
            if expiry is not None:
                expiry.cancel()
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
        if event.get("type") == SESSION_REVOKED:
            if self._revoked_by(event):
                self._close_soon(UNAUTHORIZED, "session_revoked")
            return  # never sent to a client
        if self.job_filter is not None and event.get("job_id") != self.job_filter:
            return
        self._enqueue(event)

    def _revoked_by(self, event: Event) -> bool:
        """Whether a `session.revoked` event ends this socket's credentials."""
        if event.get("all"):
            return True  # the account was disabled
        if self.api_key_id is not None:
            return event.get("api_key_id") == str(self.api_key_id)
        return self.claims.session_id is not None and event.get("session_id") == str(
            self.claims.session_id
        )

    def _enqueue(self, event: Event) -> None:
        shared = _shared(event)
        if self._direct and not self.queue and not self._protocol.writing_paused:
            # Nothing is waiting ahead of it and the transport takes it: write now
            # (in order, since the writer empties the queue in one step).
            self._send(shared)
            return
        if not self.queue.put(shared) and self._closing is None:
            log.warning("ws_slow_reader_closed", user_id=str(self.user_id))
            self._close_soon(WSCloseCode.TRY_AGAIN_LATER, "too slow")

    def _close_soon(self, code: int, reason: str) -> None:
        """Close from a synchronous caller (the bus, a timer); the first reason wins."""
        if self._closing is None:
            self._direct = False  # whatever comes now is never sent (see _close)
            if code == UNAUTHORIZED:
                log.info("ws_closed_unauthorized", user_id=str(self.user_id), reason=reason)
            self._closing = asyncio.create_task(self._close(code, reason), name="ws-close")

    async def _close(self, code: int, reason: str) -> None:
        self.queue.close()  # nothing more is sent, whatever is still queued
        # The writer may be stuck on a full socket; a close frame can still be
        # queued behind it, and the connection goes if the peer never reads.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.ws.close(code=code, message=reason.encode(), drain=False)

    def _send(self, event: SharedEvent) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed:
            return  # going away: the reader sees the end and the socket closes
        transport.write(event.frame())  # whole frames: never interleaved with aiohttp's

    async def _write_loop(self) -> None:
        """Sends what had to wait, once the transport takes more (flow control)."""
        queue = self.queue
        while await queue.wait():
            if self._transport is None or self._transport.is_closing():
                # Gone (a shutdown aborts it, paused or not): drain() would return at
                # once from now on, and this loop would never yield again.
                return
            if self._protocol.writing_paused:
                # Waits with the events still queued: progress keeps coalescing
                # there and a reader that never catches up overflows the queue.
                await self._drain()
                continue
            event = queue.get_nowait()
            if event is not None:
                self._send(_shared(event))

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
            # Never echoed: a client's text must not be what fills its own queue.
            self._enqueue(_error("unknown_type", "unknown message type"))

    def _subscribe(self, job_id: object) -> None:
        if job_id is None:
            self.job_filter = None
            return
        try:
            self.job_filter = str(uuid.UUID(str(job_id)))
        except ValueError:
            self._enqueue(_error("invalid_job_id", "job_id must be a UUID or null"))

    async def _session_is_live(self) -> bool:
        """False once the token's session has ended (or its user is gone)."""
        return await self.app[appkeys.AUTH].session_is_live(self.claims)

    async def _snapshot(self) -> Event:
        jobs = await self.app[appkeys.JOBS].active_jobs(self.user_id)
        return {"type": "snapshot", "jobs": [job_json(j) for j in jobs]}


def _shared(event: Event) -> SharedEvent:
    return event if isinstance(event, SharedEvent) else SharedEvent(event)


def _frame_size(event: Event) -> int:
    """Bytes as sent (the frame; the routing key `user_id` stays on the server side)."""
    return len(_shared(event).frame())
