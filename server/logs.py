"""structlog set-up: JSON lines, a request id (and, when tracing is on, the trace
and span ids) on every line, secrets redacted.

The request id lives in a context variable (bound by the request middleware),
so every log call made while serving a request carries it without passing
it around.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
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


def configure_logging(level: str = "info", fmt: str = "json") -> None:
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
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    # Route the standard library's loggers (aiohttp, asyncpg, botocore) through
    # the same renderer so the output stays one JSON object per line.
    handler = logging.StreamHandler(sys.stdout)
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
