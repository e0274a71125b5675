"""A SeaweedFS S3 server that a drill may stop and start again on the same ports and
data (tests/s3_server.py starts one that lives for the whole session)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.s3_server import (
    _SEAWEEDFS_PORTS,
    ACCESS_KEY_ID,
    SEAWEEDFS_START_TIMEOUT,
    SEAWEEDFS_STOP_TIMEOUT,
    SECRET_ACCESS_KEY,
    SeaweedFSUnavailable,
    _answers,
    _free_ports,
    _log_tail,
    _remove_grpc_sockets,
    _seaweedfs_argv,
    _stop,
)

ELECTION = "-master.electionTimeout=1s"


class RestartableSeaweedFS:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.data_dir = work_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = work_dir / "s3.json"
        identity = {"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        self.config.write_text(
            json.dumps(
                {"identities": [{"name": "t", "credentials": [identity], "actions": actions}]}
            )
        )
        self.ports = dict(zip(_SEAWEEDFS_PORTS, _free_ports(len(_SEAWEEDFS_PORTS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.log_path = work_dir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                # A restarted master waits out an election first (10 s by default).
                [*_seaweedfs_argv(self.data_dir, self.config, self.ports), ELECTION],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + SEAWEEDFS_START_TIMEOUT
        while time.monotonic() < deadline and self._proc.poll() is None:
            if _answers(self.endpoint):
                return
            time.sleep(0.2)
        raise SeaweedFSUnavailable(f"SeaweedFS did not (re)start:\n{_log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL the process group: a crash, and quick (a SIGTERMed `weed server`
        takes ~15 s to stop here)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(SEAWEEDFS_STOP_TIMEOUT)
            self._proc = None
        _remove_grpc_sockets(self.ports)

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None
        _remove_grpc_sockets(self.ports)
