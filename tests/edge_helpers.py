"""Helpers for the HTTP-edge tests: stored objects without ffmpeg, raw sockets, log capture.

Delivery does not care what the bytes are, so these tests put rows and
objects in place directly instead of uploading and transcoding real media.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from structlog.testing import capture_logs

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.db import videos as videos_db
from server.listener import listening
from server.object_keys import source_key
from tests.conftest import PASSWORD, User, truncate_all


async def put_object(app: web.Application, key: str, data: bytes, content_type: str) -> None:
    async with app[appkeys.STORAGE].writer(key, content_type) as writer:
        step = 1024 * 1024
        for start in range(0, len(data), step):
            await writer.write(data[start : start + step])
        await writer.commit()


async def stored_video(app: web.Application, user_id: str, data: bytes) -> uuid.UUID:
    """A `videos` row whose source object holds `data` (not a real video)."""
    owner, video_id = uuid.UUID(user_id), uuid.uuid4()
    key = source_key(owner, video_id)
    await put_object(app, key, data, "video/mp4")
    async with app[appkeys.POOL].acquire() as conn:
        await videos_db.insert_video(
            conn,
            id=video_id,
            user_id=owner,
            filename="clip.mp4",
            storage_key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type="video/mp4",
            kind="video",
            metadata={},
        )
    return video_id


async def succeeded_job(
    app: web.Application, user_id: str, video_id: uuid.UUID, name: str, data: bytes
) -> uuid.UUID:
    """A finished job of `video_id` with one output `name` holding `data`."""
    job_id = uuid.uuid4()
    key = f"videos/{user_id}/{video_id}/jobs/{job_id}/{name}"
    await put_object(app, key, data, "application/octet-stream")
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            """INSERT INTO jobs (id, user_id, video_id, operation, status, progress,
                                 started_at, finished_at)
               VALUES ($1, $2, $3, 'thumbnail', 'succeeded', 100, now(), now())""",
            job_id,
            uuid.UUID(user_id),
            video_id,
        )
        await conn.execute(
            """INSERT INTO job_outputs (job_id, name, storage_key, size, content_type)
               VALUES ($1, $2, $3, $4, 'application/octet-stream')""",
            job_id,
            name,
            key,
            len(data),
        )
    return job_id


@dataclass
class Logs:
    """What a block logged: structlog events and standard-library records."""

    events: list[MutableMapping[str, Any]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)

    def tracebacks(self) -> list[str]:
        found = [str(e.get("event")) for e in self.events if e.get("exc_info")]
        found += [r.getMessage() for r in self.records if r.exc_info]
        return found

    def errors(self) -> list[str]:
        found = [str(e.get("event")) for e in self.events if e.get("log_level") == "error"]
        found += [r.getMessage() for r in self.records if r.levelno >= logging.ERROR]
        return found

    def named(self, event: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextmanager
def captured_logs() -> Iterator[Logs]:
    """structlog events (as dicts) and aiohttp's own log records, e.g. its tracebacks."""
    logs = Logs()
    handler = _Collect(logs.records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with capture_logs() as events:
            yield logs
            logs.events.extend(events)
    finally:
        root.removeHandler(handler)


async def raw_request(host: str, port: int, head: str, body: bytes = b"") -> bytes:
    """Send `head` (CRLF lines, no final blank line) and `body`; everything the server sent."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.encode("latin-1") + b"\r\n\r\n" + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), 10)
    finally:
        writer.close()


def status_of(raw: bytes) -> int:
    """The status code of the first response in `raw` (0 when nothing came back)."""
    line = raw.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0


@dataclass
class LiveServer:
    """The app served the way `run.py` serves it (server/listener.py), on loopback."""

    app: web.Application
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def user(self) -> User:
        email = f"live-{uuid.uuid4().hex[:8]}@example.com"
        async with aiohttp.ClientSession(self.url) as session:
            credentials = {"email": email, "password": PASSWORD}
            async with session.post("/api/v1/auth/register", json=credentials) as resp:
                assert resp.status == 202, await resp.text()
            async with session.post("/api/v1/auth/login", json=credentials) as resp:
                assert resp.status == 200, await resp.text()
                tokens = await resp.json()
            me = {"Authorization": f"Bearer {tokens['access_token']}"}
            async with session.get("/api/v1/me", headers=me) as resp:
                assert resp.status == 200, await resp.text()
                user_id = (await resp.json())["id"]
        return User(user_id, email, PASSWORD, tokens["access_token"], tokens["refresh_token"])


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    settings = dataclasses.replace(settings, host="127.0.0.1", port=0)
    app = create_app(settings)
    async with listening(app, settings) as addresses:
        host, port = addresses[0][:2]
        await truncate_all(app)
        yield LiveServer(app, host, port)
