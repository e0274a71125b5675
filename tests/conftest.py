"""Shared fixtures: a real PostgreSQL database per test run, the app, a client.

PostgreSQL is the server named by TEST_DATABASE_URL (CI has one on
127.0.0.1:5432) or else an embedded one started from the pgserver wheel; in
both cases this run creates its own database and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests.s3_server import moto_s3_server, s3_settings, seaweedfs_s3_server

PASSWORD = "correct horse battery"


def _redis_database_per_worker() -> None:
    """Under pytest-xdist each worker gets its own Redis database (0 → 1, 2, …),
    so one worker's rate-limit counters and keys never meet another's. Read
    before any test looks at REDIS_URL. (Pub/sub channels are not per database;
    the buses carry account ids that are unique per run, so they do not mix.)"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL")
    if not worker.startswith("gw") or not url:
        return
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{base + 1 + int(worker[2:])}"))


_redis_database_per_worker()


def _with_database(url: str, name: str) -> str:
    # urllib keeps pgserver's `?host=/socket/dir`; yarl drops it on host-less URLs.
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server (any database on it) we may create databases in."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
        yield server.get_uri()
        server.cleanup()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"frameflow_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, shared by the whole run (buckets are per test)."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS S3 server on loopback, started once per run when a test asks."""
    with seaweedfs_s3_server(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.fixture
def backend() -> str:
    """Storage backend of the app under test; modules override it with params."""
    return "local"


@pytest.fixture
def make_settings(
    tmp_path: Path, database_url: str, backend: str, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    storage: dict[str, Any] = {}
    if backend in ("s3", "seaweedfs"):
        # Looked up lazily, so a run that needs neither server starts neither.
        endpoint = request.getfixturevalue(f"{backend}_endpoint")
        storage = s3_settings(endpoint, s3_part_size=5 * 1024 * 1024)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "bcrypt_rounds": 4,
            "log_level": "warning",
            "jwt_secret": "test-secret-" + "x" * 40,
            # Off unless a test turns it on: many tests count an upload's jobs.
            "thumbnail_after_upload": False,
            **storage,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def truncate_all(app: web.Application) -> None:
    # The app has started: its first job claim or start-up sweep may hold a table the
    # TRUNCATE needs while it waits for one the TRUNCATE holds. PostgreSQL then aborts
    # one side (deadlock detected); the other has gone on by the next try.
    for attempt in range(5):
        try:
            async with app[appkeys.POOL].acquire() as conn:
                await conn.execute(
                    "TRUNCATE users, refresh_tokens, videos, jobs, job_outputs, job_events CASCADE"
                )
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
async def client(
    app: web.Application,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[TestClient[Any, Any]]:
    test_client = await aiohttp_client(app)
    await truncate_all(app)
    yield test_client


@dataclass
class User:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register_and_login(
    client: TestClient[Any, Any], email: str | None = None, *, verified: bool = True
) -> User:
    """A new account, signed in. Sign-up answers 202 without an id (it must not tell a
    new address from a taken one), so the id comes from `GET /api/v1/me`.

    `verified` marks the email verified in the database, as following the mailed
    link would (tests/test_recovery.py follows real links); most tests need an
    account that may do everything."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    resp = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert resp.status == 202, await resp.text()
    if verified:
        async with client.server.app[appkeys.POOL].acquire() as conn:
            await conn.execute(
                "UPDATE users SET email_verified_at = now() WHERE lower(email) = lower($1)",
                email,
            )
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    resp = await client.get("/api/v1/me", headers=headers)
    assert resp.status == 200, await resp.text()
    user_id = (await resp.json())["id"]
    return User(user_id, email, PASSWORD, body["access_token"], body["refresh_token"])


@pytest.fixture
async def user(client: TestClient[Any, Any]) -> User:
    return await register_and_login(client)


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2 s 320x240 H.264/AAC MP4, made once per run."""
    from tests.clips import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "sample.mp4", seconds=2)


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under the local object store, temp files included."""
    root = data_dir / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def leftovers(app: web.Application) -> list[str]:
    """Everything the app has in storage: objects, temp files, unfinished multipart uploads."""
    settings = app[appkeys.SETTINGS]
    found = [str(p.relative_to(settings.data_dir)) for p in stored_files(settings.data_dir)]
    if settings.storage == "s3":
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
        )
        objects = s3.list_objects_v2(Bucket=settings.s3_bucket).get("Contents", [])
        uploads = s3.list_multipart_uploads(Bucket=settings.s3_bucket).get("Uploads", [])
        found += [o["Key"] for o in objects] + [f"multipart:{u['Key']}" for u in uploads]
        s3.close()
    # Copies made for ffmpeg (S3's local_path) must be gone too.
    scratch = settings.data_dir / "tmp"
    if scratch.exists():
        found += [str(p) for p in scratch.rglob("*") if p.is_file()]
    return found
