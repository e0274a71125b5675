"""A Frameflow cluster on one machine, for tests: real `python run.py --role ...`
processes on loopback ports behind Debian's nginx, run with a templated copy of
the shipped deploy/nginx/frameflow.conf.

    nginx = Nginx(work_dir / "nginx", listen_port, [api1.port, api2.port])
    nginx.start()
    node = Node.start("api-1", "api", port, env, work_dir)

Each process has its own data dir (scratch space) and a log file of JSON lines
that the tests read to see which instance served what. Everything started here
is stopped by `stop()`; nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "frameflow.conf"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )


def render_site(
    template: str, *, listen_port: int, upstreams: list[int], media_root: Path | None = None
) -> str:
    """The shipped site config with this cluster's ports: the upstream's `server`
    lines replaced by one per api port, `listen 80;` by a loopback port, and the
    media location's alias by `media_root` (a data dir's objects/)."""
    block = re.search(r"upstream frameflow_api \{\n(.*?)\n\}", template, re.S)
    assert block is not None, "deploy/nginx/frameflow.conf: no `upstream frameflow_api` block"
    kept = [line for line in block.group(1).split("\n") if not line.strip().startswith("server ")]
    servers = [f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;" for port in upstreams]
    body = "\n".join([*kept, *servers])
    site = template[: block.start(1)] + body + template[block.end(1) :]
    site, count = re.subn(
        r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{listen_port};", site, flags=re.M
    )
    assert count == 1, "deploy/nginx/frameflow.conf: expected one `listen 80;`"
    if media_root is not None:
        site, count = re.subn(r"alias /data/objects/;", f"alias {media_root}/;", site)
        assert count == 1, "deploy/nginx/frameflow.conf: expected one `alias /data/objects/;`"
    return site


class Nginx:
    """nginx in the foreground with its own prefix, pid file, logs and temp dirs."""

    def __init__(
        self, prefix: Path, port: int, upstreams: list[int], media_root: Path | None = None
    ) -> None:
        binary = nginx_binary()
        assert binary is not None
        self.binary = binary
        self.prefix = prefix
        self.port = port
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "frameflow.conf").write_text(
            render_site(
                NGINX_CONF.read_text(),
                listen_port=port,
                upstreams=upstreams,
                media_root=media_root,
            )
        )
        temp = {name: prefix / "temp" / name for name in ("body", "proxy", "fastcgi", "uwsgi")}
        for path in temp.values():
            path.mkdir(parents=True, exist_ok=True)
        # Workers of a root master run as nobody, who cannot read a test's 0700
        # temp dirs; production gives nginx's user read access to the objects.
        user = "user root;" if media_root is not None and os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"""
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/frameflow.conf;
}}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self, *extra: str) -> list[str]:
        # -e: even the start-up error log stays in the prefix, never /var/log/nginx.
        prefix = str(self.prefix)
        return [self.binary, "-e", f"{prefix}/error.log", "-p", prefix, "-c", "nginx.conf", *extra]

    def start(self) -> None:
        subprocess.run(self._argv("-t", "-q"), check=True, capture_output=True, timeout=30)
        with open(self.prefix / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                self._argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(lambda: _port_open(self.port), START_TIMEOUT, "nginx")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, signal.SIGTERM)  # fast shutdown: the test is over


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


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout:g} s")
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


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


def _stop_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
