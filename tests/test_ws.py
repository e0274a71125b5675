"""`GET /api/v1/ws` end to end (in-process bus): auth, Origin, the events of a real job
in order, subscribe, malformed messages, a slow reader, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.jobs.runner import JobRunner
from server.live.publisher import EventPublisher
from tests.conftest import PASSWORD, User, register_and_login
from tests.fake_operations import fake_operations

WS = "/api/v1/ws"
FINISHED = {"job.succeeded", "job.failed", "job.canceled"}
MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def live_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(
        workers_enabled=False,  # the app's own runner idles; fake operations run instead
        worker_concurrency=1,
        job_poll_seconds=0.5,
        ws_auth_timeout_seconds=0.5,
        **overrides,
    )


def with_fake_runner(app: web.Application, settings: Settings, dsn: str) -> web.Application:
    """Replace the app's runner by one running fake operations, publishing on the app's bus."""

    async def fake_runner(app: web.Application) -> AsyncIterator[None]:
        runner = JobRunner(
            pool=app[appkeys.POOL],
            storage=app[appkeys.STORAGE],
            settings=dataclasses.replace(settings, workers_enabled=True),
            ffmpeg=app[appkeys.FFMPEG],
            operations=app[appkeys.OPERATIONS],
            dsn=dsn,
            publish=EventPublisher(app[appkeys.BUS]).job,
        )
        app[appkeys.RUNNER] = runner
        await runner.start()
        yield
        await runner.stop()

    app[appkeys.OPERATIONS] = fake_operations()  # for the API and the runner alike
    app.cleanup_ctx.append(fake_runner)
    return app


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return live_settings(make_settings)


@pytest.fixture
def app(settings: Settings, database_url: str) -> web.Application:
    return with_fake_runner(create_app(settings), settings, database_url)


async def open_socket(
    client: TestClient[Any, Any], user: User | None = None, **kw: Any
) -> tuple[aiohttp.ClientWebSocketResponse, list[Any]]:
    """Connected (and authenticated, with `user`): the socket and its snapshot's jobs."""
    ws = await client.ws_connect(WS, **kw)
    if user is None:
        return ws, []
    await ws.send_json({"type": "auth", "token": user.access_token})
    assert await ws.receive_json(timeout=5) == {"type": "ready", "user_id": user.id}
    snapshot = await ws.receive_json(timeout=5)
    assert snapshot["type"] == "snapshot"
    return ws, snapshot["jobs"]


async def expect_close(ws: aiohttp.ClientWebSocketResponse, code: int) -> None:
    msg = await ws.receive(timeout=5)
    # The code the server sent (close_code can turn 1006 if the server is gone by the reply).
    assert (msg.type, msg.data) == (WSMsgType.CLOSE, code), msg


async def events_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[Any], bool]
) -> list[Any]:
    out = []
    async with asyncio.timeout(20):
        while True:
            event = await ws.receive_json()
            out.append(event)
            if done(event):
                return out


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while True:
            if check():
                return
            await asyncio.sleep(0.001)


async def upload(client: TestClient[Any, Any], user: User, path: Path) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{path.name}", data=path.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def post_job(
    client: TestClient[Any, Any], user: User, video_id: str, op: str, seconds: float
) -> str:
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs",
        json={"operation": op, "params": {"seconds": seconds}},
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


# --- auth ------------------------------------------------------------------------


async def test_no_auth_in_time_closes_4401(client: TestClient[Any, Any]) -> None:
    ws, _ = await open_socket(client)
    await expect_close(ws, 4401)  # ws_auth_timeout_seconds is 0.5 here


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "auth"},
        {"type": "ping"},
        "not json",
        "refresh",
    ],
)
async def test_bad_first_message_closes_4401(
    client: TestClient[Any, Any], user: User, first: Any
) -> None:
    ws, _ = await open_socket(client)
    if first == "refresh":  # a refresh token is not an access token
        first = {"type": "auth", "token": user.refresh_token}
    if isinstance(first, str):
        await ws.send_str(first)
    else:
        await ws.send_json(first)
    await expect_close(ws, 4401)


async def test_expired_token_closes_4401(
    client: TestClient[Any, Any], user: User, app: web.Application
) -> None:
    from server.auth.tokens import TokenService

    old = TokenService(app[appkeys.SETTINGS].jwt_secret, app[appkeys.SETTINGS], clock=lambda: 1e9)
    token, _ = old.issue_access(__import__("uuid").UUID(user.id), "user")
    ws, _ = await open_socket(client)
    await ws.send_json({"type": "auth", "token": token})
    await expect_close(ws, 4401)


async def test_token_in_the_url_is_ignored(client: TestClient[Any, Any], user: User) -> None:
    ws = await client.ws_connect(f"{WS}?token={user.access_token}")
    await expect_close(ws, 4401)


# --- Origin ------------------------------------------------------------------------


async def test_foreign_origin_is_refused_before_the_upgrade(
    client: TestClient[Any, Any], user: User
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect(WS, headers={"Origin": "https://evil.example"})
    assert caught.value.status == 403
    resp = await client.get(WS, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "origin_not_allowed"
    # The page's own origin is fine.
    own = str(client.make_url("")).rstrip("/")
    ws, _ = await open_socket(client, user, headers={"Origin": own})
    await ws.close()


async def test_allowed_origins_setting_replaces_same_origin(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    settings = live_settings(
        make_settings, allowed_origins="https://app.example.com, http://localhost:3000"
    )
    client = await aiohttp_client(create_app(settings))
    user = await register_and_login(client)
    for origin in ("https://app.example.com", "HTTP://localhost:3000"):
        ws, _ = await open_socket(client, user, headers={"Origin": origin})
        await ws.close()
    own = str(client.make_url("")).rstrip("/")
    for origin in (own, "https://app.example.com.evil.example", "null"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await client.ws_connect(WS, headers={"Origin": origin})
        assert caught.value.status == 403


# --- events ------------------------------------------------------------------------


async def test_a_real_job_in_order(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    ws, snapshot = await open_socket(client, user)
    assert snapshot == []
    video_id = await upload(client, user, sample_mp4)
    ready = await ws.receive_json(timeout=5)
    assert ready["type"] == "video.ready" and ready["video_id"] == video_id
    assert ready["video"]["id"] == video_id and "user_id" not in ready

    job_id = await post_job(client, user, video_id, "sleep", 1.0)
    events = await events_until(ws, lambda e: e["type"] in FINISHED)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["job.queued", "job.started"]
    assert kinds[-1] == "job.succeeded"
    assert set(kinds[2:-1]) == {"job.progress"} and len(kinds) >= 4
    values = [e["progress"] for e in events[1:]]
    assert values == sorted(values) and values[-1] == 100
    for e in events:
        assert (e["job_id"], e["video_id"], e["job"]["id"]) == (job_id, video_id, job_id)
        assert e["status"] == e["job"]["status"] and e["at"]
    assert [e["status"] for e in events][:2] == ["queued", "running"]
    assert events[-1]["job"]["status"] == "succeeded"

    resp = await client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    gone = await ws.receive_json(timeout=5)
    assert (gone["type"], gone["video_id"], gone["job_id"]) == ("video.deleted", video_id, None)
    await ws.close()


async def test_snapshot_subscribe_and_other_users(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video_id = await upload(client, user, sample_mp4)
    first = await post_job(client, user, video_id, "ramp", 1.0)
    second = await post_job(client, user, video_id, "ramp", 0.5)
    other = await register_and_login(client)
    spy, _ = await open_socket(client, other)

    ws, snapshot = await open_socket(client, user)
    assert {j["id"] for j in snapshot} == {first, second}
    await ws.send_json({"type": "subscribe", "job_id": second})
    await ws.send_json({"type": "ping"})
    await events_until(ws, lambda e: e["type"] == "pong")  # the filter is on from here
    narrowed = await events_until(ws, lambda e: e["type"] in FINISHED and e["job_id"] == second)
    assert {e["job_id"] for e in narrowed} == {second}
    assert narrowed[0]["type"] in {"job.started", "job.progress"}

    await ws.send_json({"type": "subscribe", "job_id": None})
    await ws.send_json({"type": "snapshot"})
    again = await events_until(ws, lambda e: e["type"] == "snapshot")
    assert again[-1]["jobs"] == []  # both finished
    # Nothing of this user reached the other one's socket.
    await spy.send_json({"type": "ping"})
    assert await spy.receive_json(timeout=5) == {"type": "pong"}
    await spy.close()
    await ws.close()


async def test_malformed_messages_get_errors_not_a_close(
    client: TestClient[Any, Any], user: User
) -> None:
    ws, _ = await open_socket(client, user)
    bad: list[Any] = ["{", "[1]", {"type": "nope"}, {"type": "subscribe", "job_id": "x"}]
    for message in bad:
        await (ws.send_str(message) if isinstance(message, str) else ws.send_json(message))
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error" and reply["error"]["code"] and reply["error"]["message"]
    await ws.send_bytes(b"\x00")
    assert (await ws.receive_json(timeout=5))["type"] == "error"
    await ws.send_json({"type": "ping"})
    assert await ws.receive_json(timeout=5) == {"type": "pong"}
    await ws.close()


async def test_every_frame_length_arrives_whole_and_uncompressed(
    client: TestClient[Any, Any], user: User, app: web.Application
) -> None:
    # Events are framed once by the server itself (RFC 6455's 7-, 16- and 64-bit
    # lengths) and sent as is to every socket: deflate is declined even when offered.
    ws, _ = await open_socket(client, user, compress=15)
    assert ws.compress == 0
    other, _ = await open_socket(client, user)
    # Whole frames of these payload sizes: each side of both length boundaries.
    sizes = [60, 125, 126, 127, 65_535, 65_536, 70_000]
    for n, size in enumerate(sizes):
        bare = len(json.dumps({"type": "job.started", "job_id": str(n), "pad": ""}))
        app[appkeys.BUS].publish(
            {
                "type": "job.started",
                "user_id": user.id,
                "job_id": str(n),
                "pad": "x" * (size - bare),
            }
        )
    for socket in (ws, other):
        got = [await socket.receive(timeout=5) for _ in sizes]
        assert [(m.type, len(m.data)) for m in got] == [(WSMsgType.TEXT, size) for size in sizes]
        events = [json.loads(m.data) for m in got]
        assert [e["job_id"] for e in events] == [str(n) for n in range(len(sizes))]
        assert all("user_id" not in e for e in events)
        await socket.send_json({"type": "ping"})
        assert await socket.receive_json(timeout=5) == {"type": "pong"}
        await socket.close()


# --- slow readers and shutdown -------------------------------------------------------


async def test_a_reader_that_stops_reading_is_closed_1013_alone(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    app = create_app(live_settings(make_settings, ws_queue_size=16))
    client = await aiohttp_client(app)
    user = await register_and_login(client)
    slow, _ = await open_socket(client, user)  # and never reads again (until the end)
    fast, _ = await open_socket(client, user)
    received: list[Any] = []

    async def read_fast() -> None:
        async for msg in fast:
            received.append(msg.json())

    reader = asyncio.create_task(read_fast())
    padding = "x" * 4096
    sent = 0
    async with asyncio.timeout(30):
        while len(app[appkeys.SOCKETS]) == 2:
            for _ in range(8):  # state events: never coalesced, never dropped
                sent += 1
                app[appkeys.BUS].publish(
                    {"type": "job.started", "user_id": user.id, "job_id": str(sent), "pad": padding}
                )
            await until(lambda n=sent: len(received) >= n)  # paced by the reader that keeps up
    assert [int(e["job_id"]) for e in received] == list(range(1, sent + 1))
    # The slow socket gets what was already on its way, then 1013.
    async with asyncio.timeout(10):
        while (msg := await slow.receive()).type == WSMsgType.TEXT:
            pass
    assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1013), msg
    await fast.send_json({"type": "ping"})
    await until(lambda: received[-1] == {"type": "pong"})
    await fast.close()
    await reader


async def test_shutdown_closes_sockets_going_away(
    client: TestClient[Any, Any], user: User, app: web.Application
) -> None:
    ws, _ = await open_socket(client, user)
    pending, _ = await open_socket(client)  # not yet authenticated
    await client.server.close()
    await expect_close(ws, 1001)
    assert not app[appkeys.SOCKETS]
    await ws.close()
    await pending.close()


# --- memory bounds (bytes, not events) and the per-user cap -------------------------


async def test_errors_never_echo_the_clients_text(client: TestClient[Any, Any], user: User) -> None:
    ws, _ = await open_socket(client, user)
    big = "A" * 60_000
    for message in ({"type": big}, {"type": "subscribe", "job_id": big}, {"x": big}):
        await ws.send_json(message)
        reply = await ws.receive(timeout=5)
        assert reply.type == WSMsgType.TEXT and len(reply.data) < 200, reply.data[:300]
        assert "AAAA" not in reply.data
    await ws.close()


async def test_a_slow_readers_queue_is_bounded_in_bytes(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    # Room for 10,000 events but only 64 KiB: big events must overflow it by bytes.
    app = create_app(live_settings(make_settings, ws_queue_size=10_000, ws_queue_bytes=65_536))
    client = await aiohttp_client(app)
    user = await register_and_login(client)
    slow, _ = await open_socket(client, user)  # and never reads again (until the end)
    padding = "x" * 32_768
    peak = 0
    async with asyncio.timeout(30):
        for sent in range(1, 2001):
            app[appkeys.BUS].publish(
                {"type": "job.started", "user_id": user.id, "job_id": str(sent), "pad": padding}
            )
            await asyncio.sleep(0)  # let the writer move what the socket takes
            queues = [s.queue for s in _live_sockets(app)]
            peak = max([peak, *(q.bytes for q in queues)])
            if not queues or queues[0].closed:
                break
    # Closed long before 10,000 events (or the 2,000 sent), never past its byte budget.
    assert sent < 2000, "the slow socket was never closed"
    assert peak <= 65_536
    async with asyncio.timeout(10):
        while (msg := await slow.receive()).type == WSMsgType.TEXT:
            pass
    assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1013), msg


async def test_a_slow_socket_whose_connection_drops_lets_go(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    # The connection goes while the writer waits for a full transport to drain
    # (a shutdown aborts connections so): the writer must end, not spin.
    app = create_app(
        live_settings(make_settings, ws_queue_size=10_000, ws_queue_bytes=16 * 1024 * 1024)
    )
    client = await aiohttp_client(app)
    user = await register_and_login(client)
    slow, _ = await open_socket(client, user)  # and never reads again
    padding = "x" * 32_768
    async with asyncio.timeout(30):
        while True:
            app[appkeys.BUS].publish(
                {"type": "job.started", "user_id": user.id, "job_id": "1", "pad": padding}
            )
            await asyncio.sleep(0)
            (server_side,) = _live_sockets(app)
            if server_side.queue and server_side._protocol.writing_paused:
                break
    server_side._transport.abort()
    await until(lambda: not _live_sockets(app))
    fast, _ = await open_socket(client, user)
    await fast.send_json({"type": "ping"})
    assert await fast.receive_json(timeout=5) == {"type": "pong"}
    await fast.close()
    await slow.close()


def _live_sockets(app: web.Application) -> list[Any]:
    """The server side of the app's authenticated sockets (their queues, for the test)."""
    from server.live.socket import _LiveSocket

    bus = app[appkeys.BUS]
    return [
        sub.deliver.__self__
        for subs in bus._subscribers.values()
        for sub in subs
        if isinstance(getattr(sub.deliver, "__self__", None), _LiveSocket)
    ]


async def test_one_socket_too_many_for_a_user_is_closed_4429(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    app = create_app(live_settings(make_settings, ws_max_sockets_per_user=2))
    client = await aiohttp_client(app)
    user = await register_and_login(client)
    other = await register_and_login(client)
    first, _ = await open_socket(client, user)
    second, _ = await open_socket(client, user)
    extra = await client.ws_connect(WS)
    await extra.send_json({"type": "auth", "token": user.access_token})
    msg = await extra.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (
        WSMsgType.CLOSE,
        4429,
        "too many sockets for this user",
    )
    # Others are not affected, and a closed socket frees its place.
    theirs, _ = await open_socket(client, other)
    await first.close()
    await until(lambda: app[appkeys.BUS].subscriber_count(user.id) == 1)
    again, _ = await open_socket(client, user)
    for ws in (second, theirs, again, extra):
        await ws.close()


# --- credentials end, the socket ends -------------------------------------------------


async def test_the_socket_closes_4401_when_its_access_token_expires(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    app = create_app(live_settings(make_settings, access_token_ttl_seconds=2))
    client = await aiohttp_client(app)
    user = await register_and_login(client)
    ws, _ = await open_socket(client, user)
    await ws.send_json({"type": "ping"})
    assert await ws.receive_json(timeout=5) == {"type": "pong"}
    msg = await ws.receive(timeout=5)  # the token had at most 2 s left
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "token_expired")
    await until(lambda: not app[appkeys.SOCKETS])


async def test_logout_closes_that_sessions_sockets_at_once(
    client: TestClient[Any, Any], user: User, app: web.Application
) -> None:
    mine, _ = await open_socket(client, user)
    also_mine, _ = await open_socket(client, user)
    # Another login of the same account: another session.
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    elsewhere = dataclasses.replace(user, access_token=(await resp.json())["access_token"])
    other_session, _ = await open_socket(client, elsewhere)

    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    for ws in (mine, also_mine):
        msg = await ws.receive(timeout=2)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
    # The other session's socket carries on, and gets nothing of the revocation.
    await other_session.send_json({"type": "ping"})
    assert await other_session.receive_json(timeout=5) == {"type": "pong"}
    # The access token is still unexpired, but its session is over: no new socket,
    # refused as HTTP refuses it (the one account check).
    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": user.access_token})
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_ended")
    await other_session.close()


async def test_a_password_change_closes_the_other_sessions_sockets_and_a_reset_all(
    client: TestClient[Any, Any], user: User, app: web.Application
) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    elsewhere = dataclasses.replace(user, access_token=(await resp.json())["access_token"])
    mine, _ = await open_socket(client, user)
    other, _ = await open_socket(client, elsewhere)
    new_password = "another long password"
    resp = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=user.headers,
    )
    assert resp.status == 204, await resp.text()
    msg = await other.receive(timeout=2)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
    await mine.send_json({"type": "ping"})
    assert await mine.receive_json(timeout=5) == {"type": "pong"}

    # A reset ends the caller's session too. The token is remade from the
    # outbox row as the outbox does (this app has no SMTP peer).
    resp = await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    assert resp.status == 202
    async with app[appkeys.POOL].acquire() as conn:
        facts = await conn.fetchval(
            "SELECT facts FROM notification_log WHERE event = 'account.password_reset'"
        )
    token = app[appkeys.ACCOUNT_TOKENS].token_for(uuid.UUID(facts["token_id"]))
    resp = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": PASSWORD}
    )
    assert resp.status == 204, await resp.text()
    msg = await mine.receive(timeout=2)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")


async def test_a_replayed_refresh_token_closes_the_sessions_sockets(
    client: TestClient[Any, Any], user: User
) -> None:
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert resp.status == 200
    rotated = await resp.json()
    ws, _ = await open_socket(
        client, dataclasses.replace(user, access_token=rotated["access_token"])
    )
    # The spent token again: someone copied it, the whole session ends.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert resp.status == 401
    msg = await ws.receive(timeout=2)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
