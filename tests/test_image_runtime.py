"""The production image leaves out pgserver and imageio-ffmpeg (see requirements.lock):
the real `run.py`, with both made unimportable, serves against a configured database
and ffmpeg, and without a database URL says what to set instead of a traceback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _admin, _with_database
from tests.test_process import ROOT, env_for, free_port

IMAGE_EXCLUDES = ("pgserver", "imageio_ffmpeg")

# `python run.py ...` as in the image: the excluded packages cannot be imported.
_AS_IN_THE_IMAGE = f"""
import runpy, sys

class NotInTheImage:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {IMAGE_EXCLUDES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the image)")
        return None

sys.meta_path.insert(0, NotInTheImage())
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


def run_as_in_the_image(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AS_IN_THE_IMAGE, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"frameflow_image_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bundled_ffmpeg() -> str:
    # Only its path: the image has Debian's ffmpeg on PATH; this machine may not.
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ready(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/health/ready"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_serves_without_pgserver_and_imageio_ffmpeg(fresh_database: str, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(fresh_database, FRAMEFLOW_FFMPEG_PATH=bundled_ffmpeg())
    proc = run_as_in_the_image("--port", str(port), "--data-dir", str(tmp_path), env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ready(port), "not ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "not in the image" not in out


def test_without_a_database_url_it_says_what_to_set(tmp_path: Path) -> None:
    env = env_for("")
    del env["FRAMEFLOW_DATABASE_URL"]
    env.pop("DATABASE_URL", None)
    proc = run_as_in_the_image("--data-dir", str(tmp_path), "migrate", env=env)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    assert "configuration error" in out and "DATABASE_URL" in out, out
    assert "Traceback" not in out
