"""A Frameflow cluster on one machine, for tests: real `python run.py --role ...`
processes on loopback ports behind Debian's nginx, run with a templated copy of
the shipped deploy/nginx/frameflow.conf.

    nginx = Nginx(work_dir / "nginx", listen_port, [api1.port, api2.port])
    nginx.start()
    node = Node.start("api-1", "api", port, env, work_dir)

nginx itself is run by devtools/nginx.py (shared with bench/cluster_bench.py).
Each process has its own data dir (scratch space) and a log file of JSON lines
that the tests read to see which instance served what. Everything started here
is stopped by `stop()`; nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from devtools.nginx import (
    NGINX_CONF,
    ROOT,
    STOP_TIMEOUT,
    Nginx,
    nginx_binary,
    render_site,
    wait_for,
)

__all__ = [
    "NGINX_CONF",
    "Nginx",
    "Node",
    "free_port",
    "nginx_binary",
    "render_site",
    "stop_all",
    "wait_for",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    """One `python run.py --role ROLE` process."""

    name: str
    role: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, role: str, env: dict[str, str], work_dir: Path) -> Node:
        port = free_port()
        data_dir = work_dir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        log = work_dir / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEFLOW_")}
        full_env.pop("DATABASE_URL", None)
        full_env.pop("REDIS_URL", None)
        # As in conftest: tests count an upload's jobs; one that wants it says so in `env`.
        full_env["FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD"] = "false"
        full_env.update(env)
        full_env.update(
            {
                "FRAMEFLOW_ROLE": role,
                "FRAMEFLOW_DATA_DIR": str(data_dir),
                "FRAMEFLOW_HOST": "127.0.0.1",
                "FRAMEFLOW_PORT": str(port),
                "FRAMEFLOW_LOG_FORMAT": "json",
                "FRAMEFLOW_LOG_LEVEL": "info",
            }
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py")],
                cwd=ROOT,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its group holds its ffmpeg children too
            )
        return cls(name, role, port, proc, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
        try:
            # Loopback http:// only (self.url).
            with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue  # a line from something other than the logger
        return lines

    def served(self, request_id: str) -> bool:
        return any(
            line.get("event") == "request" and line.get("request_id") == request_id
            for line in self.log_lines()
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown code runs. Its ffmpeg
        children are killed too afterwards, so that no orphan outlives the test."""
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)
        _kill_all(children)

    def stop(self) -> None:
        stop_all([self])


def stop_all(nodes: list[Node]) -> None:
    """SIGTERM to every node at once (each shuts down gracefully, in parallel), then
    wait; whatever is left after STOP_TIMEOUT is killed, ffmpeg children included."""
    children = [c for node in nodes for c in _children(node.proc.pid)]
    running = [node.proc for node in nodes if node.proc.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in running:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
    _kill_all(children)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):  # gone already
            process.kill()
    psutil.wait_procs(processes, timeout=STOP_TIMEOUT)
