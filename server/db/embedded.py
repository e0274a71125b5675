"""The embedded PostgreSQL under `<data dir>/postgres`, and when it stops.

With no database URL configured, PostgreSQL is started from the `pgserver`
wheel. Several Frameflow processes may share it (the server, `run.py migrate`
or `cleanup` next to it), so none may stop it while another still uses it.
The rule, applied when a process exits:

- Stop it when this is the last live Frameflow process using it *and* a
  Frameflow process started it. Users are pgserver's own handle list
  (`<pgdata>/.handle_pids.json`, one pid per process, under pgserver's
  inter-process lock); pids of processes that died without cleaning up
  (SIGKILL, a power cut) are dropped, so a crash does not keep it running
  for ever: the next Frameflow process to exit stops it.
- "Started by Frameflow" is a marker file written by the process that found
  it stopped and started it. A server that was already running when a
  Frameflow process came (started by hand, or by a version that left it
  running) is left alone and logged, with the command that stops it:
  `python run.py stop-db`.

Stopping is `pg_ctl stop -m fast`: sessions are closed and the data is
checkpointed, so the next start is quick and loses nothing.
"""

from __future__ import annotations

import atexit
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server import data_dirs
from server.logs import get_logger

log = get_logger("frameflow.db")

# Written into PGDATA by the process that started the server; PostgreSQL
# ignores files it does not know there (pgserver keeps its own beside it).
STARTED_MARKER = "frameflow-started"
HANDLES_FILE = ".handle_pids.json"  # pgserver's list of processes using the server
STOP_TIMEOUT_SECONDS = 60

# Servers this process attached to, by PGDATA, until released.
_attached: dict[Path, Any] = {}
_atexit_registered = False


class EmbeddedPostgresMissing(RuntimeError):
    """No database URL is configured and pgserver is not installed (the production image)."""


def pgdata_of(data_dir: Path) -> Path:
    return data_dirs.postgres_dir(data_dir).resolve()


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        try:
            import pgserver  # imported lazily: production never needs it
        except ImportError as exc:
            raise EmbeddedPostgresMissing(
                "no database configured and the embedded PostgreSQL is not installed: set "
                "DATABASE_URL (or FRAMEFLOW_DATABASE_URL), or `pip install pgserver`"
            ) from exc
    return pgserver


def _postmaster_pid(pgdata: Path) -> int | None:
    """Pid of the postmaster running on `pgdata`, or None."""
    try:
        first_line = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the postmaster runs as `pgserver` under root)
    return True


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server; returns its socket URI.

    This process is recorded as a user until it exits (or `release_embedded_postgres`).
    """
    global _atexit_registered
    pgdata = pgdata_of(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver()
    was_running = _postmaster_pid(pgdata) is not None
    # cleanup_mode=None: pgserver's own exit hook would stop the server even when
    # someone else started it; the rule above is applied by `release` instead.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    if not was_running:
        (pgdata / STARTED_MARKER).write_text(f"started by Frameflow process {os.getpid()}\n")
    _attached[pgdata] = server
    if not _atexit_registered:
        atexit.register(release_embedded_postgres)
        _atexit_registered = True
    return str(server.get_uri())


@dataclass(frozen=True)
class Released:
    pgdata: Path
    stopped: bool
    others: list[int]  # live processes still using it


def release_embedded_postgres() -> list[Released]:
    """Stop using every embedded server this process attached to; stop each one
    when the rule in the module docstring says so. Runs at exit by itself."""
    released = []
    for pgdata, server in list(_attached.items()):
        del _attached[pgdata]
        # Our pid is gone from pgserver's list now; its own exit hook has nothing to do.
        atexit.unregister(server._cleanup)
        released.append(_release(pgdata, server.system_user))
        type(server)._instances.pop(pgdata, None)
    return released


def _release(pgdata: Path, system_user: str | None) -> Released:
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    with PostgresServer._lock:  # the lock pgserver takes around its handle list
        handles = DiskList(pgdata / HANDLES_FILE)
        others = [pid for pid in handles.get() if pid != os.getpid() and _alive(pid)]
        handles.put(others)
        if others:
            log.info("embedded_postgres_kept", pgdata=str(pgdata), used_by=others)
            return Released(pgdata, False, others)
        if not (pgdata / STARTED_MARKER).exists():
            if _postmaster_pid(pgdata) is not None:
                log.info(
                    "embedded_postgres_left_running",
                    pgdata=str(pgdata),
                    reason="it was running before Frameflow came; `python run.py stop-db` stops it",
                )
            return Released(pgdata, False, [])
        stopped = _pg_ctl_stop(pgdata, system_user)
        return Released(pgdata, stopped, [])


def _pg_ctl_stop(pgdata: Path, system_user: str | None) -> bool:
    """`pg_ctl stop -m fast` and remove the marker; False when nothing was running."""
    import subprocess

    if _postmaster_pid(pgdata) is None:
        (pgdata / STARTED_MARKER).unlink(missing_ok=True)
        return False
    try:
        _pgserver().pg_ctl(  # made at import time for each binary pgserver ships
            ["-w", "-m", "fast", "-t", str(STOP_TIMEOUT_SECONDS), "stop"],
            pgdata=pgdata,
            user=system_user,
        )
    except subprocess.CalledProcessError:
        if _postmaster_pid(pgdata) is not None:
            log.exception("embedded_postgres_stop_failed", pgdata=str(pgdata))
            return False
    (pgdata / STARTED_MARKER).unlink(missing_ok=True)
    log.info("embedded_postgres_stopped", pgdata=str(pgdata))
    return True


def stop_embedded_postgres(data_dir: Path, *, force: bool = False) -> Released:
    """`python run.py stop-db`: stop the server on `data_dir` unless a live Frameflow
    process still uses it (or `force`). Whoever started it."""
    pgdata = pgdata_of(data_dir)
    _pgserver()
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    with PostgresServer._lock:
        handles = DiskList(pgdata / HANDLES_FILE)
        others = [pid for pid in handles.get() if pid != os.getpid() and _alive(pid)]
        if others and not force:
            return Released(pgdata, False, others)
        handles.put([])
        # As root, pgserver runs PostgreSQL as its own `pgserver` user; pg_ctl must too.
        system_user = "pgserver" if os.geteuid() == 0 else None
        return Released(pgdata, _pg_ctl_stop(pgdata, system_user), others)
