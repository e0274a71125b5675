"""nginx as a local load balancer in front of Frameflow processes, for the
cluster tests (tests/cluster.py) and the cluster benchmark (bench/cluster_bench.py).

Development tooling, not shipped in the image. It runs Debian's nginx in the
foreground with its own prefix (config, pid file, logs, temp dirs) and a
templated copy of the shipped deploy/nginx/frameflow.conf — only the upstream's
`server` lines and `listen` change — so what is tested and measured is the
configuration operators get. Nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "frameflow.conf"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )


def render_site(
    template: str,
    *,
    listen_port: int,
    upstreams: list[int],
    media_root: Path | None = None,
    cache_dir: Path | None = None,
) -> str:
    """The shipped site config with this cluster's ports: the upstream's `server`
    lines replaced by one per api port, `listen 80;` by a loopback port, the
    media locations' alias and root by `media_root` (a data dir's objects/), and the
    authorization cache's directory by `cache_dir`."""
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
        site, aliases = re.subn(r"alias /data/objects/;", f"alias {media_root}/;", site)
        site, roots = re.subn(r"root /data/objects;", f"root {media_root};", site)
        assert (aliases, roots) == (1, 1), (
            "deploy/nginx/frameflow.conf: expected one `alias /data/objects/;` "
            "and one `root /data/objects;`"
        )
    if cache_dir is not None:
        site, count = re.subn(
            r"proxy_cache_path /run/frameflow-nginx-authorizations ",
            f"proxy_cache_path {cache_dir} ",
            site,
        )
        assert count == 1, "deploy/nginx/frameflow.conf: expected one `proxy_cache_path`"
    return site


class Nginx:
    """nginx in the foreground with its own prefix, pid file, logs and temp dirs."""

    def __init__(
        self,
        prefix: Path,
        port: int,
        upstreams: list[int],
        media_root: Path | None = None,
        *,
        worker_processes: int = 1,
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
                cache_dir=prefix / "authorizations",
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
worker_processes {worker_processes};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 1024; }}
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


def _stop_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
