"""The real `run.py` process: serving, SIGTERM with an upload in flight, CLI commands."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import PASSWORD, _admin, _with_database

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEFLOW_")}
    env.update(
        {
            "FRAMEFLOW_DATABASE_URL": database_url,
            "FRAMEFLOW_BCRYPT_ROUNDS": "4",
            "FRAMEFLOW_JWT_SECRET": "process-test-" + "y" * 40,
            "FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD": "false",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    """An empty database of its own, for tests that migrate from nothing."""
    name = f"frameflow_proc_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_two_migrations_at_once_and_create_admin(fresh_database: str, tmp_path: Path) -> None:
    env = env_for(fresh_database)
    procs = [
        subprocess.Popen(
            [sys.executable, "run.py", "--data-dir", str(tmp_path), "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out

    done = run_cli(
        "--data-dir",
        str(tmp_path),
        "create-admin",
        "Boss@Example.com",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr + done.stdout

    async def role() -> str:
        conn = await asyncpg.connect(fresh_database)
        try:
            return str(
                await conn.fetchval(
                    "SELECT role FROM users WHERE lower(email) = 'boss@example.com'"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(role()) == "admin"


def test_bad_configuration_fails_loudly(tmp_path: Path) -> None:
    done = run_cli(
        "--data-dir", str(tmp_path), "migrate", env={**os.environ, "FRAMEFLOW_PORT": "x"}
    )
    assert done.returncode != 0
    assert "FRAMEFLOW_PORT" in done.stderr


@pytest.fixture
def server(
    fresh_database: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env_for(fresh_database, FRAMEFLOW_SHUTDOWN_GRACE_SECONDS="4"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
    try:
        yield proc, base, data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _login(base: str) -> str:
    email = f"p-{uuid.uuid4().hex[:6]}@example.com"
    async with aiohttp.ClientSession() as s:
        creds = {"email": email, "password": PASSWORD}
        r = await s.post(f"{base}/api/v1/auth/register", json=creds)
        assert r.status == 202, await r.text()
        r = await s.post(f"{base}/api/v1/auth/login", json=creds)
        return str((await r.json())["access_token"])


def _temp_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "objects").rglob("*") if p.is_file()]


def test_sigterm_aborts_unfinished_upload_and_exits_cleanly(
    server: tuple[subprocess.Popen[str], str, Path], sample_mp4: Path, fresh_database: str
) -> None:
    proc, base, data_dir = server
    token = asyncio.run(_login(base))
    body = sample_mp4.read_bytes()
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            "PUT /api/v1/uploads/slow.mp4 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body) * 100}\r\n\r\n"
        ).encode()
        + body
    )
    deadline = time.monotonic() + 20
    while not _temp_files(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temp_files(data_dir), "the upload never reached storage"

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    sock.close()
    assert proc.returncode == 0, out
    assert time.monotonic() - started < 15
    assert _temp_files(data_dir) == []

    async def rows() -> int:
        conn = await asyncpg.connect(fresh_database)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM videos"))
        finally:
            await conn.close()

    assert asyncio.run(rows()) == 0
    assert '"event": "request"' in out  # structured JSON access log lines


def test_sigterm_lets_an_inflight_download_finish(
    server: tuple[subprocess.Popen[str], str, Path], tmp_path: Path
) -> None:
    """In-flight responses finish within the grace period. (Request *bodies* do
    not: aiohttp stops reading sockets at shutdown, so an upload still sending
    is aborted after the grace period — the test above.)"""
    from bench._common import make_video

    proc, base, _ = server
    token = asyncio.run(_login(base))
    big = make_video(tmp_path / "big.mp4", 24 * 1024 * 1024)
    port = int(base.rsplit(":", 1)[1])

    async def upload() -> str:
        async with aiohttp.ClientSession() as s:
            r = await s.put(
                f"{base}/api/v1/uploads/big.mp4",
                data=big.open("rb"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status == 201, await r.text()
            return str((await r.json())["id"])

    video_id = asyncio.run(upload())
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(
            (
                f"GET /api/v1/videos/{video_id}/content HTTP/1.1\r\nHost: x\r\n"
                f"Connection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        sock.settimeout(20)
        reply = sock.recv(65536)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # shutdown has begun; the response is still being sent
        while chunk := sock.recv(1024 * 1024):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:300]
    assert body == big.read_bytes()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
