"""A PostgreSQL of the test's own (pgserver's binaries in a temp dir) that a drill
may stop and start again — never CI's shared server."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class RestartablePostgres:
    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import pgserver

        self._server: Any = pgserver.get_server(pgdata, cleanup_mode=None)
        self.url: str = self._server.get_uri()

    @classmethod
    @contextlib.contextmanager
    def in_temp_dir(cls) -> Iterator[RestartablePostgres]:
        """A server in a fresh directory, stopped and removed afterwards. Not under
        pytest's tmp_path: as root, pgserver runs PostgreSQL as its own user, which
        must reach the directory on every start."""
        root = Path(tempfile.mkdtemp(prefix="frameflow-pg-"))
        os.chmod(root, 0o755)  # noqa: S103 - PostgreSQL runs as pgserver's own user
        try:
            server = cls(root / "pgdata")
            try:
                yield server
            finally:
                server.close()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: sessions are cut, as in a restart or a failover."""
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
