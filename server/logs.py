"""structlog set-up: JSON lines, a request id (and, when tracing is on, the trace
and span ids) on every line, secrets redacted.

The request id lives in a context variable (bound by the request middleware),
so every log call made while serving a request carries it without passing
it around.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

from server.tracing import add_trace_ids

# Keys whose values must never reach a log line, wherever they appear.
_SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "secret",
        "jwt_secret",
        "signature",
        "s3_secret_access_key",
        "database_url",
        "redis_url",
    }
)


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS and event[key]:
            event[key] = "***"
    return event


def configure_logging(level: str = "info", fmt: str = "json", *, background: bool = False) -> None:
    """`background`: lines are written by a thread of their own (what `run.py` does),
    so that a write to a log file on a busy disk never stalls the event loop."""
    out: Any = _QueuedStream(sys.stdout) if background else sys.stdout
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_secrets,
    ]
    processors = [*shared, structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    global _access
    _access = (
        _AccessLine(processors, out, logging.getLevelName(level.upper()) <= logging.INFO)
        if fmt == "json"
        else None
    )
    # Route the standard library's loggers (aiohttp, asyncpg, botocore) through
    # the same renderer so the output stays one JSON object per line.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("frameflow").setLevel(level.upper())
    # aiohttp.access would duplicate our own access log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str = "frameflow") -> Any:
    return structlog.get_logger(name)


class _AccessLine:
    """The per-request log line, rendered as the processors above would render it
    (same keys, same order, same JSON) without going through them: measured with
    bench/range_bench.py, the chain cost about a tenth of a small range request."""

    __slots__ = ("enabled", "file", "processors")

    def __init__(self, processors: list[Any], file: Any, enabled: bool) -> None:
        self.processors = processors
        self.file = file
        self.enabled = enabled

    def write(self, event: str, fields: dict[str, Any]) -> None:
        fields["event"] = event
        for key, value in structlog.contextvars.get_contextvars().items():
            fields.setdefault(key, value)
        fields["level"] = "info"
        fields["timestamp"] = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        redact_secrets(None, "info", fields)
        self.file.write(json.dumps(fields, default=repr) + "\n")
        self.file.flush()


_access: _AccessLine | None = None


def log_access(logger: Any, event: str, **fields: Any) -> None:
    """`logger.info(event, **fields)` for the one line every request writes."""
    access = _access
    if access is None or structlog.get_config()["processors"] is not access.processors:
        logger.info(event, **fields)  # console format, or captured (tests)
    elif access.enabled:
        access.write(event, fields)


# How long the log writer lets lines gather before writing them out.
BATCH_SECONDS = 0.02


class _QueuedStream:
    """A text stream whose writes a daemon thread carries out, in order.

    Measured with bench/range_bench.py on a machine whose disk others were
    filling: the server sat idle waiting in write() on its log file (the kernel
    throttles processes that dirty pages while writeback lags), at the same CPU
    per request as a server that logs nothing. Lines written before exit are
    flushed by an atexit hook.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()
        atexit.register(self.drain)

    def write(self, text: str) -> int:
        self._lines.put(text)
        return len(text)

    def flush(self) -> None:
        pass  # the thread flushes after each batch

    def drain(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until what is queued has been written."""
        deadline = time.monotonic() + timeout
        while not self._lines.empty() and time.monotonic() < deadline:
            time.sleep(0.005)
        with self._lock:  # a batch being written is finished
            pass

    def _run(self) -> None:
        while True:
            batch = [self._lines.get()]
            # Let lines gather: one wake-up (and one GIL hand-off) per batch, not per line.
            time.sleep(BATCH_SECONDS)
            with self._lock:
                try:
                    while len(batch) < 1000:
                        batch.append(self._lines.get_nowait())
                except queue.Empty:
                    pass
                self._stream.write("".join(batch))
                self._stream.flush()
