"""The request envelope: request id, access log, metrics and JSON errors.

One middleware owns all four so that every answer — success, raised
`HTTPError`, aiohttp's own 404/405/413, or an unexpected crash — is logged,
counted and rendered the same way.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from server import appkeys
from server.errors import BadRequest, HTTPError, NotFound
from server.logs import get_logger

log = get_logger("frameflow.http")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# aiohttp raises its own HTTPException subclasses (unmatched route, wrong
# method, body over client_max_size); give them stable codes of our own.
_AIOHTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def _render(exc: HTTPError) -> web.Response:
    resp = web.json_response(exc.body(), status=exc.status)
    resp.headers.update(exc.headers)
    return resp


def _render_aiohttp(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects and 304s pass through untouched
    code = _AIOHTTP_CODES.get(exc.status, "http_error")
    resp = error_response(exc.status, code, exc.reason)
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            resp.headers[name] = exc.headers[name]
    return resp


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def _check_request_target(request: web.Request) -> None:
    """NUL in the decoded path or query: PostgreSQL text cannot hold it, and no
    name Frameflow serves contains one, so refuse it here once for every route."""
    if "\x00" in request.path:
        raise NotFound()
    if any("\x00" in key or "\x00" in value for key, value in request.query.items()):
        raise BadRequest("The query string contains NUL", code="invalid_query")


@web.middleware
async def request_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    request[appkeys.REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            _check_request_target(request)
            resp = await handler(request)
        except HTTPError as exc:
            resp = _render(exc)
            if exc.status >= 500:
                log.error("request_failed", code=exc.error_code, error=exc.message)
        except web.HTTPException as exc:
            resp = _render_aiohttp(exc)
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499  # nginx's "client closed request", for logs and metrics only
            raise
        except Exception:
            log.exception("unhandled_error", method=request.method, path=request.path)
            resp = error_response(500, "internal_error", "Internal server error")
        status = resp.status
        return resp
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app[appkeys.METRICS]
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route, request.method).observe(elapsed)
        # The path only: query strings can carry URL signatures.
        log.info(
            "request",
            method=request.method,
            path=request.path,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            remote=request.remote,
        )


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses prepared in handlers."""
    request_id = request.get(appkeys.REQUEST_ID)
    if request_id:
        response.headers["X-Request-ID"] = request_id
