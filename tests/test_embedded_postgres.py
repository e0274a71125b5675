"""The embedded PostgreSQL stops with the last real `run.py` process that uses it.

Real processes on a fresh data dir each (no DATABASE_URL), real signals; a
leftover postmaster is what the user would find with `ps` after Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server.db.embedded import STARTED_MARKER, pgdata_of, stop_embedded_postgres
from tests.test_process import ROOT, free_port

START_TIMEOUT = 90  # initdb of a fresh data dir plus the server's start-up


def embedded_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRAMEFLOW_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        {"FRAMEFLOW_BCRYPT_ROUNDS": "4", "FRAMEFLOW_JWT_SECRET": "embedded-test-" + "z" * 40}
    )
    return env


def postmasters(data_dir: Path) -> list[int]:
    """Pids of PostgreSQL servers running on this data dir (`postgres -D <pgdata>`)."""
    pgdata = str(pgdata_of(data_dir))
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(arg == pgdata for arg in cmdline) and Path(cmdline[0]).name == "postgres":
            found.append(int(proc.info["pid"]))
    return found


def wait_until_gone(data_dir: Path, seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := postmasters(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run.py", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        env=embedded_env(),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "--port", str(self.port), "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=embedded_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out = self.proc.communicate(timeout=10)[0]
                pytest.fail(f"run.py did not become ready:\n{out[-3000:]}")
            time.sleep(0.2)

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/health/ready"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        self.proc.send_signal(sig)
        out = self.proc.communicate(timeout=60)[0]
        assert self.proc.returncode == 0, out[-3000:]
        return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Whatever a failing test left behind must not outlive it.
    if pgdata_of(path).exists():
        stop_embedded_postgres(path, force=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_run_py_stops_the_postgres_it_started(data_dir: Path, sig: signal.Signals) -> None:
    server = Server(data_dir)
    assert len(postmasters(data_dir)) == 1
    assert (pgdata_of(data_dir) / STARTED_MARKER).exists()
    out = server.stop(sig)
    assert wait_until_gone(data_dir) == [], "PostgreSQL outlived run.py"
    assert "embedded_postgres_stopped" in out
    assert not (pgdata_of(data_dir) / STARTED_MARKER).exists()
    # The next start finds its data again.
    assert run_cli(data_dir, "migrate").returncode == 0
    assert wait_until_gone(data_dir) == []


def test_postgres_stays_while_another_frameflow_process_uses_it(data_dir: Path) -> None:
    server = Server(data_dir)
    (postmaster,) = postmasters(data_dir)
    # A CLI command next to the server attaches to the same PostgreSQL and leaves it.
    done = run_cli(data_dir, "migrate")
    assert done.returncode == 0, done.stderr
    assert postmasters(data_dir) == [postmaster]
    assert server.ready()
    refused = run_cli(data_dir, "stop-db")
    assert refused.returncode == 1 and "in use" in refused.stdout
    assert postmasters(data_dir) == [postmaster]
    server.stop()
    assert wait_until_gone(data_dir) == []


def test_after_a_crash_the_next_process_to_exit_stops_it(data_dir: Path) -> None:
    server = Server(data_dir)
    server.proc.send_signal(signal.SIGKILL)  # no exit hook runs
    server.proc.communicate(timeout=30)
    assert len(postmasters(data_dir)) == 1
    done = run_cli(data_dir, "migrate")
    assert done.returncode == 0, done.stderr
    assert wait_until_gone(data_dir) == []


def test_a_postgres_frameflow_did_not_start_is_left_running_and_stop_db_stops_it(
    data_dir: Path,
) -> None:
    server = Server(data_dir)
    # As if it had been running before Frameflow came (by hand, an older version).
    (pgdata_of(data_dir) / STARTED_MARKER).unlink()
    out = server.stop()
    assert "embedded_postgres_left_running" in out
    assert len(postmasters(data_dir)) == 1
    done = run_cli(data_dir, "stop-db")
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout
    assert wait_until_gone(data_dir) == []
    again = run_cli(data_dir, "stop-db")
    assert again.returncode == 0 and "not running" in again.stdout
