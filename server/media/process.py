"""Run one ffmpeg process safely: no shell, bounded memory, bounded time, no leftovers.

Every ffmpeg that Frameflow starts goes through :func:`run_ffmpeg`:

- argv is a list handed to ``exec`` (no shell, so nothing in it is interpreted);
- stdin is /dev/null, so ffmpeg never waits for keyboard input;
- its environment is a short allow-list, without the server's secrets;
- it runs in its own session (process group), so a timeout or a cancel can
  signal ffmpeg and anything it started in one go;
- stderr is drained while the process runs (a full pipe would block ffmpeg)
  and only its first and last few KB are kept, however chatty ffmpeg gets;
- on timeout, cancellation or a failing stdout consumer the group gets
  SIGTERM, then SIGKILL after a grace period, and the process is always
  reaped before this function returns or raises.

The job runner builds on ``on_stdout`` to read ``-progress pipe:1``. Callers
confine ffmpeg by passing ``argv`` through a :mod:`sandbox`'s ``wrap`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from server.tracing import mark_error, span

DEFAULT_STDERR_CAP = 64 * 1024
DEFAULT_STDERR_TAIL_CAP = 8 * 1024
DEFAULT_KILL_GRACE_SECONDS = 3.0

_READ_SIZE = 64 * 1024
# After the process is reaped its pipes reach EOF at once (unless something
# outside the group kept them open); never wait longer than this for that.
_PIPE_EOF_WAIT_SECONDS = 1.0

# ffmpeg gets only these variables of the server's environment: the rest
# holds secrets (FRAMEFLOW_JWT_SECRET, DATABASE_URL, S3 keys) that an exploited
# decoder could otherwise copy into an output its uploader downloads, and
# variables that change what ffmpeg writes (FFREPORT writes report files, the
# AV_LOG_FORCE_*COLOR ones put ANSI escapes into the stderr we parse).
_KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH")


class FfmpegError(Exception):
    """Base class of failures to run ffmpeg to completion."""


class FfmpegTimeout(FfmpegError):
    """ffmpeg ran past its wall-clock limit and was killed."""

    def __init__(self, timeout: float, stderr_tail: str) -> None:
        super().__init__(f"ffmpeg did not finish within {timeout:g} s and was stopped")
        self.timeout = timeout
        self.stderr_tail = stderr_tail


@dataclass(frozen=True, slots=True)
class FfmpegResult:
    returncode: int  # negative: killed by that signal (from outside Frameflow)
    stderr_head: str  # the first ``stderr_cap`` bytes: stream info is printed early
    stderr_tail: str  # the last ``stderr_tail_cap`` bytes: errors and final stats
    stderr_bytes: int  # everything ffmpeg wrote; above len(head) the middle was dropped

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class StderrCollector:
    """Keeps the first ``head_cap`` and the last ``tail_cap`` bytes of a stream.

    The tail overlaps the head when the stream was short; callers that want
    "everything" should check ``total <= head_cap`` and use the head.
    """

    def __init__(self, head_cap: int, tail_cap: int) -> None:
        if head_cap < 0 or tail_cap < 0:
            raise ValueError("stderr caps must not be negative")
        self.head_cap = head_cap
        self.tail_cap = tail_cap
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
        if self.tail_cap:
            self._tail += chunk[-self.tail_cap :]
            if len(self._tail) > self.tail_cap:
                del self._tail[: len(self._tail) - self.tail_cap]

    def head_text(self) -> str:
        return self._head.decode("utf-8", errors="replace")

    def tail_text(self) -> str:
        return self._tail.decode("utf-8", errors="replace")


class _Running:
    """ffmpeg processes of this Python process, spawned and not yet reaped."""

    count = 0


def running_processes() -> int:
    """How many ffmpeg processes this process runs right now (for /metrics)."""
    return _Running.count


def _reaped(_waiter: asyncio.Task[int]) -> None:
    _Running.count -= 1


async def run_ffmpeg(
    argv: Sequence[str],
    *,
    # Not just asyncio.timeout() around the call: on expiry ffmpeg gets SIGTERM
    # with its stderr still draining, and the error carries that stderr.
    timeout: float,  # noqa: ASYNC109
    stderr_cap: int = DEFAULT_STDERR_CAP,
    stderr_tail_cap: int = DEFAULT_STDERR_TAIL_CAP,
    stdout: int | IO[Any] = asyncio.subprocess.DEVNULL,
    on_stdout: Callable[[bytes], None] | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE_SECONDS,
) -> FfmpegResult:
    """Run ``argv`` (``argv[0]`` is the ffmpeg binary) and wait for it to exit.

    ``stdout`` is where ffmpeg's standard output goes (a file descriptor or an
    open binary file); ``on_stdout`` instead receives it chunk by chunk as it
    is produced (chunks do not follow line boundaries). A non-zero exit status
    is returned, not raised: what it means depends on the caller.

    Raises :class:`FfmpegTimeout` after ``timeout`` seconds, re-raises
    ``CancelledError`` and whatever ``on_stdout`` raised; in each case the
    process group has been killed and reaped first.
    """
    if not argv:
        raise ValueError("argv must at least name the ffmpeg binary")
    if on_stdout is not None and stdout != asyncio.subprocess.DEVNULL:
        raise ValueError("pass either stdout or on_stdout, not both")
    if stdout == asyncio.subprocess.PIPE:
        # Nobody would read it: ffmpeg would block once the pipe is full.
        raise ValueError("use on_stdout to read ffmpeg's stdout")
    # argv[0] may be the sandbox (bwrap); the arguments carry server-made paths only.
    with span(
        "ffmpeg",
        {"process.executable.name": os.path.basename(argv[0]), "process.args_count": len(argv)},
    ) as current:
        result = await _run(
            argv, timeout, stderr_cap, stderr_tail_cap, stdout, on_stdout, kill_grace
        )
        current.set_attribute("process.exit.code", result.returncode)
        if not result.ok:
            mark_error(current, f"exit status {result.returncode}")
        return result


async def _run(
    argv: Sequence[str],
    timeout: float,  # noqa: ASYNC109
    stderr_cap: int,
    stderr_tail_cap: int,
    stdout: int | IO[Any],
    on_stdout: Callable[[bytes], None] | None,
    kill_grace: float,
) -> FfmpegResult:
    collector = StderrCollector(stderr_cap, stderr_tail_cap)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if on_stdout is not None else stdout,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=_child_env(),
    )
    assert proc.stderr is not None
    streams: list[tuple[asyncio.StreamReader, Callable[[bytes], None]]] = [
        (proc.stderr, collector.feed)
    ]
    if on_stdout is not None:
        assert proc.stdout is not None
        streams.append((proc.stdout, on_stdout))
    pumps = [asyncio.create_task(_pump(stream, sink)) for stream, sink in streams]
    waiter = asyncio.create_task(proc.wait())
    # Done (or cancelled) once the process is reaped, on every path below.
    _Running.count += 1
    waiter.add_done_callback(_reaped)

    try:
        # asyncio.wait (unlike wait_for/timeout) leaves the tasks running when
        # it gives up, so stderr keeps draining while ffmpeg handles SIGTERM.
        done, pending = await asyncio.wait(
            [*pumps, waiter], timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
    except asyncio.CancelledError:
        await _stop(proc, waiter, pumps, streams, kill_grace)
        raise

    failure = next(
        (t.exception() for t in done if not t.cancelled() and t.exception() is not None), None
    )
    if failure is not None or pending:
        if await _stop(proc, waiter, pumps, streams, kill_grace):
            raise asyncio.CancelledError
        if failure is not None:
            raise failure
        raise FfmpegTimeout(timeout, collector.tail_text())

    return FfmpegResult(
        returncode=waiter.result(),
        stderr_head=collector.head_text(),
        stderr_tail=collector.tail_text(),
        stderr_bytes=collector.total,
    )


async def _pump(stream: asyncio.StreamReader, sink: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(_READ_SIZE):
        sink(chunk)


async def _stop(
    proc: asyncio.subprocess.Process,
    waiter: asyncio.Task[int],
    pumps: list[asyncio.Task[None]],
    streams: list[tuple[asyncio.StreamReader, Callable[[bytes], None]]],
    grace: float,
) -> bool:
    """Kill the process group, reap the process and close its pipes.

    Runs to the end even if the calling task is cancelled meanwhile (a
    half-done cleanup is how zombies and stray ffmpegs happen); returns
    whether such a cancellation arrived, so the caller can re-raise it.
    """
    interrupted = False
    if not waiter.done():
        # SIGTERM first: ffmpeg then finishes its output files cleanly.
        _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait([waiter], timeout=grace)
        except asyncio.CancelledError:
            interrupted = True
    if not waiter.done():
        _signal_group(proc, signal.SIGKILL)
    interrupted |= await _wait_through_cancel([waiter])

    # With the process gone the pipes reach EOF; wait for that so that the
    # subprocess transport closes (an open one warns when collected).
    try:
        await asyncio.wait(pumps, timeout=_PIPE_EOF_WAIT_SECONDS)
    except asyncio.CancelledError:
        interrupted = True
    for pump in pumps:
        pump.cancel()
    interrupted |= await _wait_through_cancel(pumps)
    # A pump that failed (its consumer raised) stopped reading: finish its
    # stream here, discarding the rest.
    for (stream, _sink), pump in zip(streams, pumps, strict=True):
        if pump.cancelled() or pump.exception() is not None:
            discard = asyncio.create_task(_pump(stream, _discard))
            try:
                await asyncio.wait([discard], timeout=_PIPE_EOF_WAIT_SECONDS)
            except asyncio.CancelledError:
                interrupted = True
            discard.cancel()
            interrupted |= await _wait_through_cancel([discard])
    return interrupted


async def _wait_through_cancel(tasks: list[asyncio.Task[Any]]) -> bool:
    """Wait until ``tasks`` are done even if cancelled; True if cancelled meanwhile."""
    interrupted = False
    while not all(t.done() for t in tasks):
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            interrupted = True
    return interrupted


def _discard(_chunk: bytes) -> None:
    return None


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # start_new_session=True made ffmpeg the leader of a group whose id is its pid.
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, sig)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV or k.startswith("LC_")}
    env["AV_LOG_FORCE_NOCOLOR"] = "1"
    return env
