"""tus uploads from a real client (tuspy): a cut connection, and a server SIGKILLed and
restarted mid-upload; each resumes and the stored video's SHA-256 is the file's."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.clips import make_clip
from tests.conftest import User, _admin, _with_database
from tests.s3_server import s3_settings
from tests.tcp_proxy import CuttingProxy
from tests.test_process import _login, env_for, free_port

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ERRORS = (TusUploadFailed, TusCommunicationError)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def proxy_to(client: TestClient[Any, Any]) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(client.server.port or 0)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def video_sha256(base: str, headers: dict[str, str], video_id: str) -> str:
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{base}/api/v1/videos/{video_id}", headers=headers)
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["sha256"])


async def test_tuspy_resumes_after_the_connection_is_cut(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    proxy_to: CuttingProxy,
    request: pytest.FixtureRequest,
) -> None:
    tus = TusClient(f"http://127.0.0.1:{proxy_to.port}/api/v1/tus/", headers=user.headers)
    # tuspy leaves files it opens itself to the garbage collector: hand it open streams.
    first, second = sample_mp4.open("rb"), sample_mp4.open("rb")
    request.addfinalizer(first.close)
    request.addfinalizer(second.close)
    uploader = tus.uploader(file_stream=first, chunk_size=20_000, metadata={"filename": "cut.mp4"})
    proxy_to.cut_at(35_000)  # inside the second PATCH's body
    with pytest.raises(CLIENT_ERRORS):
        await asyncio.to_thread(uploader.upload)
    assert proxy_to.cuts == 1
    assert uploader.url is not None

    # A new client resumes from the URL alone: HEAD, then PATCH from the offset.
    resumed = await asyncio.to_thread(
        tus.uploader,
        file_stream=second,
        url=uploader.url,
        chunk_size=20_000,
        retries=3,
        retry_delay=1,
        upload_checksum=True,
    )
    assert 20_000 <= resumed.offset < sample_mp4.stat().st_size
    await asyncio.to_thread(resumed.upload)
    video_id = resumed.request.response_headers["frameflow-video-id"]
    base = f"http://127.0.0.1:{client.server.port}"
    expected = hashlib.sha256(sample_mp4.read_bytes()).hexdigest()
    assert await video_sha256(base, user.headers, video_id) == expected


# --- a real server process, SIGKILLed mid-PATCH --------------------------------------


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"frameflow_tus_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~330 KB: a few PATCHes of 128 KiB, several 64 KiB checkpoints each."""
    return make_clip(tmp_path_factory.mktemp("tus") / "clip.mp4", seconds=8, width=640, height=480)


class Server:
    """`python run.py` on a fixed port, started again on the same one after a kill."""

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.env = env
        self.data_dir = data_dir
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "run.py",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    pytest.fail("server exited:\n" + self.log.read_text(errors="replace"))
                await asyncio.sleep(0.1)
        pytest.fail("server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
async def server(
    backend: str, fresh_database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    extra = {"FRAMEFLOW_TUS_CHECKPOINT_BYTES": "65536", "FRAMEFLOW_LOG_LEVEL": "warning"}
    if backend == "s3":
        s3 = s3_settings(request.getfixturevalue("s3_endpoint"), s3_part_size=5 * 1024 * 1024)
        extra.update({f"FRAMEFLOW_{k.upper()}": str(v) for k, v in s3.items()})
    server = Server(env_for(fresh_database, **extra), tmp_path / "data", tmp_path / "server.log")
    await server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_tuspy_resumes_across_a_server_sigkill(
    server: Server, clip: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    headers = {"Authorization": f"Bearer {await _login(server.base)}"}
    size = clip.stat().st_size
    chunk = 128 * 1024
    # Slowed down so that the kill lands in the middle of a PATCH body.
    proxy = CuttingProxy(server.port, bytes_per_second=400_000)
    await proxy.start()
    try:
        tus = TusClient(f"http://127.0.0.1:{proxy.port}/api/v1/tus/", headers=headers)
        first, second = clip.open("rb"), clip.open("rb")
        request.addfinalizer(first.close)
        request.addfinalizer(second.close)
        uploader = tus.uploader(file_stream=first, chunk_size=chunk, metadata={"filename": "k.mp4"})
        uploading = asyncio.ensure_future(asyncio.to_thread(uploader.upload))
        async with asyncio.timeout(30):
            while True:
                if proxy.forwarded >= chunk + 120_000:
                    break
                await asyncio.sleep(0.01)
        server.kill()
        with pytest.raises(CLIENT_ERRORS):
            await uploading
        assert uploader.url is not None

        await server.start()
        proxy.bytes_per_second = None
        resumed = await asyncio.to_thread(
            tus.uploader,
            file_stream=second,
            url=uploader.url,
            chunk_size=chunk,
            retries=3,
            retry_delay=1,
        )
        # The first PATCH was answered; at most the one cut off is (partly) lost.
        assert chunk <= resumed.offset < size
        if backend == "local":  # a 64 KiB checkpoint inside the PATCH that was cut off
            assert resumed.offset >= chunk + 64 * 1024
        await asyncio.to_thread(resumed.upload)
        video_id = resumed.request.response_headers["frameflow-video-id"]
        expected = hashlib.sha256(clip.read_bytes()).hexdigest()
        assert await video_sha256(server.base, headers, video_id) == expected
    finally:
        await proxy.stop()
