"""Shared pieces of the benchmarks: the real server as a subprocess, and tools.

Everything runs on 127.0.0.1 with bounded waits. The server under test is
`python run.py` exactly as deployed (no test app factory), so the numbers
include its middlewares, logging, database and storage backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
MiB = 1024 * 1024
LOOPBACK = "127.0.0.1"
PASSWORD = "bench password 123"
# moto accepts any credentials; explicit ones keep botocore off ~/.aws.
S3_ACCESS_KEY_ID = "frameflow-bench"
S3_SECRET_ACCESS_KEY = "frameflow-bench-secret"
START_TIMEOUT = 90.0  # the embedded PostgreSQL's first initdb takes a few seconds
STOP_TIMEOUT = 30.0


class BenchError(RuntimeError):
    """The benchmark could not run (setup failed, wrong response)."""


def log(message: str) -> None:
    # Progress on stderr so stdout carries only the result table.
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def ensure_tool(command: str, apt_package: str | None = None) -> str:
    """Path of `command`, installing its Debian package once if it is missing."""
    found = shutil.which(command)
    if found:
        return found
    package = apt_package or command
    log(f"{command} not found; apt-get install -y {package}")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        subprocess.run(step, check=False, capture_output=True, timeout=600)
    found = shutil.which(command)
    if not found:
        raise BenchError(f"{command} is needed; install the Debian package {package}")
    return found


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_video(path: Path, size_bytes: int) -> Path:
    """A real MP4 of exactly `size_bytes`: a 2 s clip plus a trailing `free` box.

    The server sniffs the first bytes and probes the file with FFmpeg, so the
    body must be a real video; a top-level `free` box after `moov` is legal
    ISO BMFF that demuxers skip. The padding is random bytes (one 1 MiB block
    repeated), written for real rather than sparse, so every layer moves real,
    incompressible data.
    """
    clip = path.with_suffix(".clip.mp4")
    subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",  # moov first, so nothing after the padding is needed
            str(clip),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    head = clip.read_bytes()
    clip.unlink()
    box_header = 16  # 32-bit size 1, type, 64-bit "largesize"
    padding = size_bytes - len(head) - box_header
    if padding < 0:
        raise BenchError(f"size {size_bytes} is smaller than the clip ({len(head)} bytes)")
    block = os.urandom(MiB)
    with path.open("wb") as out:
        out.write(head)
        out.write((1).to_bytes(4, "big") + b"free" + (padding + box_header).to_bytes(8, "big"))
        remaining = padding
        while remaining:
            n = min(remaining, len(block))
            out.write(block[:n])
            remaining -= n
    return path


# --- database -----------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    # urllib keeps a `?host=/socket/dir` query; only the path changes.
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """A fresh database on `server_url`, dropped afterwards; "" means embedded.

    With no server URL the Frameflow process starts its own embedded
    PostgreSQL under its data dir, exactly as `python run.py` does by default.
    """
    if not server_url:
        yield ""
        return
    name = f"frameflow_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def default_database_server() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL", "")


# --- processes -----------------------------------------------------------------------


def _wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode}:\n{tail(log_file)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback URL)
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s:\n{tail(log_file)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (a graceful shutdown, as in production), then SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} ignored SIGTERM for {timeout:.0f} s; killing it")
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def background_process(
    argv: Sequence[str],
    *,
    ready_url: str,
    log_file: Path,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, wait until `ready_url` answers, stop it on the way out."""
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_http_ok(ready_url, proc, timeout, log_file)
        yield proc
    except Exception:
        # The work dir is removed on the way out; show what the process said.
        log(f"{argv[1]} log ({log_file.name}):\n{tail(log_file)}")
        raise
    finally:
        stop_process(proc)


@dataclass
class Frameflow:
    base_url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_file: Path


def server_env(overrides: dict[str, str]) -> dict[str, str]:
    """The parent environment minus any Frameflow configuration, plus `overrides`.

    Inherited FRAMEFLOW_*, DATABASE_URL or REDIS_URL would silently change what
    is measured, so the benchmark states every setting it relies on.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRAMEFLOW_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(overrides)
    return env


@contextlib.contextmanager
def frameflow_server(
    work_dir: Path,
    *,
    database_server: str,
    storage: str = "local",
    s3_endpoint: str = "",
    max_upload_bytes: int,
    log_level: str = "info",
    extra_env: dict[str, str] | None = None,
) -> Iterator[Frameflow]:
    """`python run.py --port P --data-dir D` with its own database and data dir.

    `extra_env`: more FRAMEFLOW_* settings, applied last (a bench's own knobs).
    """
    port = free_port()
    data_dir = work_dir / f"frameflow-{storage}-{uuid.uuid4().hex[:6]}"
    data_dir.mkdir(parents=True)
    log_file = data_dir.with_suffix(".log")
    with bench_database(database_server) as database_url:
        settings = {
            "FRAMEFLOW_DATABASE_URL": database_url,
            "FRAMEFLOW_STORAGE": storage,
            # Room for the uploads, with the quota never the limiting factor.
            "FRAMEFLOW_MAX_UPLOAD_BYTES": str(max_upload_bytes),
            "FRAMEFLOW_DEFAULT_QUOTA_BYTES": str(8 * max_upload_bytes),
            "FRAMEFLOW_JWT_SECRET": secrets.token_urlsafe(48),
            # Registration and login are setup, not what is measured.
            "FRAMEFLOW_BCRYPT_ROUNDS": "4",
            "FRAMEFLOW_ACCESS_TOKEN_TTL_SECONDS": "3600",
            "FRAMEFLOW_LOG_LEVEL": log_level,
            "FRAMEFLOW_LOG_FORMAT": "json",
            # No automatic thumbnail job after each upload: its ffmpeg would share the
            # cores with what is measured, and its events would reach ws_bench's sockets.
            "FRAMEFLOW_THUMBNAIL_AFTER_UPLOAD": "false",
        }
        if storage == "s3":
            settings |= {
                "FRAMEFLOW_S3_ENDPOINT_URL": s3_endpoint,
                "FRAMEFLOW_S3_BUCKET": f"frameflow-bench-{uuid.uuid4().hex[:8]}",
                "FRAMEFLOW_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
                "FRAMEFLOW_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
            }
        settings |= extra_env or {}
        argv = [
            sys.executable,
            "run.py",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "serve",
        ]
        base = f"http://{LOOPBACK}:{port}"
        try:
            with background_process(
                argv, ready_url=base + "/health/ready", log_file=log_file, env=server_env(settings)
            ) as proc:
                yield Frameflow(base, proc, data_dir, log_file)
        finally:
            if not database_url:
                stop_embedded_postgres(data_dir / "postgres")


def stop_embedded_postgres(pgdata: Path, timeout: float = 30) -> None:
    """Stop the embedded PostgreSQL that the server left running.

    Frameflow leaves it up on purpose (the next start, or `run.py migrate`,
    reuses it), but a benchmark's data dir is thrown away. `pg_ctl` refuses to
    run as root, so this signals the postmaster named in its pid file
    directly: SIGINT is PostgreSQL's "fast" shutdown.
    """
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        if "postgres" not in postmaster.name():
            return  # a stale pid file; the number now belongs to someone else
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout)
    except (OSError, ValueError, psutil.Error) as exc:
        log(f"embedded PostgreSQL in {pgdata} not stopped: {exc!r}")


@contextlib.contextmanager
def moto_s3_server(work_dir: Path) -> Iterator[str]:
    """moto's S3 server in its own process (so it does not share our GIL)."""
    port = free_port()
    code = (
        "import logging, threading\n"
        "from moto.server import ThreadedMotoServer\n"
        "logging.getLogger('werkzeug').setLevel(logging.WARNING)\n"
        f"server = ThreadedMotoServer(ip_address='{LOOPBACK}', port={port}, verbose=False)\n"
        "server.start()\n"
        "threading.Event().wait()\n"
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    with background_process(
        [sys.executable, "-c", code],
        ready_url=endpoint + "/moto-api/",
        log_file=work_dir / "moto.log",
        env=server_env({}),
        timeout=60,
    ):
        yield endpoint


# --- HTTP API -----------------------------------------------------------------------------


def api(
    method: str,
    url: str,
    *,
    token: str = "",
    body: dict[str, Any] | None = None,
    expect: int = 200,
) -> Any:
    """One JSON request; BenchError with the response body on an unexpected status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback URL)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    if status != expect:
        raise BenchError(f"{method} {url}: {status} (expected {expect}): {payload[:500]!r}")
    return json.loads(payload) if payload else None


def register_and_login(base_url: str) -> str:
    """A new account's access token."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    credentials = {"email": email, "password": PASSWORD}
    api("POST", base_url + "/api/v1/auth/register", body=credentials, expect=202)
    return str(api("POST", base_url + "/api/v1/auth/login", body=credentials)["access_token"])


@dataclass
class CurlResult:
    status: int
    seconds: float
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def curl(args: Sequence[str], *, timeout: float) -> CurlResult:
    """Run curl; status and total time come from curl's own `--write-out`."""
    marker = "\n__CURL__"
    proc = subprocess.run(
        [
            ensure_tool("curl"),
            "-sS",
            "--max-time",
            str(int(timeout)),
            "-w",
            marker + "%{http_code} %{time_total}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    body, _, trailer = proc.stdout.rpartition(marker)
    if proc.returncode != 0 or not trailer:
        raise BenchError(
            f"curl failed ({proc.returncode}): {proc.stderr.strip()} {proc.stdout[-300:]}"
        )
    status, seconds = trailer.split()
    return CurlResult(int(status), float(seconds), body)


# --- measuring ---------------------------------------------------------------------------


class RssSampler:
    """Peak resident memory of one process, polled every `interval` seconds.

    Only the server's own process is counted: the embedded PostgreSQL and
    FFmpeg probes are separate processes with their own memory.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline: int = int(self._process.memory_info().rss)
        self.peak = self.baseline
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, int(self._process.memory_info().rss))
                self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def wrk_result(url: str, script: Path, args: Any, seconds: float) -> dict[str, Any]:
    """One `wrk` run with `script` (whose `done` prints a `RESULT {json}` line, as
    range_bench's Lua does): that JSON. `args`: threads and connections."""
    proc = subprocess.run(
        [
            ensure_tool("wrk"),
            f"--threads={args.threads}",
            f"--connections={args.connections}",
            f"--duration={seconds:g}s",
            "--timeout=10s",
            f"--script={script}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Table:
    """A plain-text table, also kept as rows for the JSON results."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.columns, *self.rows]) for i in range(len(self.columns))
        ]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(self.columns), rule, *(line(r) for r in self.rows)])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def environment() -> dict[str, Any]:
    import aiohttp

    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "curl": subprocess.run(
            [ensure_tool("curl"), "--version"], capture_output=True, text=True, check=False
        ).stdout.split("\n")[0],
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# --- uploads (upload_bench.py, tus_bench.py) ---------------------------------------------

SMOKE_SIZE = 8 * MiB  # checked first: the padded file must be accepted at all


def upload(
    base_url: str,
    method: str,
    path: Path,
    token: str,
    timeout: float,
    query: str = "",
    *,
    rename: str | None = None,
) -> CurlResult:
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    if method == "put":
        # What the README tells users to run: `curl -T FILE URL`.
        name = rename or path.name
        args = ["-T", str(path), *auth, f"{base_url}/api/v1/uploads/{name}{query}"]
    else:
        args = ["-F", f"file=@{path};type=video/mp4", *auth, f"{base_url}/api/v1/uploads{query}"]
    return curl(args, timeout=timeout)


def upload_video(base_url: str, token: str, path: Path, name: str | None = None) -> str:
    """`curl -T` of `path` (as `name`, else its own name): the new video's id."""
    done = upload(base_url, "put", path, token, 300, rename=name)
    if done.status != 201:
        raise BenchError(f"upload: HTTP {done.status}: {done.body[:500]}")
    return str(done.json()["id"])


def signed_content_url(base_url: str, token: str, video_id: str) -> str:
    """The video's signed content URL, as `content-url` hands it to a `<video>`."""
    return str(api("GET", f"{base_url}/api/v1/videos/{video_id}/content-url", token=token)["url"])


def timeout_for(size: int) -> float:
    # Generous (2 MiB/s) but bounded, so a stuck server cannot hang the bench.
    return 120 + size / (2 * MiB)


def delete_video(base_url: str, token: str, video_id: str) -> None:
    api("DELETE", f"{base_url}/api/v1/videos/{video_id}", token=token, expect=204)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()
