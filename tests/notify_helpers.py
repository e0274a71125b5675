"""Shared by the email and webhook tests: an app whose runner runs fake operations,
and helpers to upload, run a job and wait for something in the database."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.jobs.runner import JobRunner
from tests.conftest import User
from tests.fake_operations import fake_operations

T = TypeVar("T")

FAST_JOBS = {
    "workers_enabled": False,
    "worker_concurrency": 1,
    "job_lease_seconds": 2.0,
    "job_heartbeat_seconds": 0.5,
    "job_poll_seconds": 0.5,
}


class Inbox:
    """aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        out = []
        for env in self.envelopes:
            raw = env.original_content or env.content
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            out.append(message)
        return out


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP peer on a free loopback port. A test module takes it with
    `smtp = notify_helpers.smtp` (as `storage_fixtures` is shared)."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def app_with_fake_runner(settings: Settings, database_url: str) -> web.Application:
    """The real app; its own runner stays idle and this one runs fake operations."""
    app = create_app(settings)

    async def fake_runner(app: web.Application) -> AsyncIterator[None]:
        runner = JobRunner(
            pool=app[appkeys.POOL],
            storage=app[appkeys.STORAGE],
            settings=dataclasses.replace(settings, workers_enabled=True),
            ffmpeg=app[appkeys.FFMPEG],
            operations=app[appkeys.OPERATIONS],
            dsn=database_url,
        )
        app[appkeys.RUNNER] = runner
        await runner.start()
        yield
        await runner.stop()

    app[appkeys.OPERATIONS] = fake_operations()  # for the API and the runner alike
    app.cleanup_ctx.append(fake_runner)
    return app


async def upload(client: TestClient[Any, Any], user: User, path: Path) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{path.name}", data=path.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def run_job(
    client: TestClient[Any, Any], user: User, video_id: str, operation: str, seconds: float = 0.2
) -> dict[str, Any]:
    """Queue a job and wait until it has ended; returns it as the API shows it."""
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs",
        json={"operation": operation, "params": {"seconds": seconds}},
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]

    async def finished() -> dict[str, Any] | None:
        resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
        job: dict[str, Any] = await resp.json()
        return job if job["status"] in {"succeeded", "failed", "canceled"} else None

    return await eventually(finished)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 15.0, interval: float = 0.05
) -> T:
    """Poll `probe` until it returns something other than None or False."""
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if value is not None and value is not False:
                return value
            await asyncio.sleep(interval)
