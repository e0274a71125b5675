"""The request envelope: request id, access log, metrics and JSON errors.

One middleware owns all four so that every answer — success, raised
`HTTPError`, aiohttp's own 404/405/413, or an unexpected crash — is logged,
counted and rendered the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from server import appkeys
from server.database_down import DATABASE_ERRORS, database_down
from server.errors import (
    BadRequest,
    ClientClosedRequest,
    DatabaseUnavailable,
    HTTPError,
    NotFound,
    ObjectStoreUnavailable,
)
from server.listener import request_finished, request_started
from server.logs import get_logger, log_access
from server.request_body import continue_withheld
from server.serving.redact import redact_links
from server.storage.base import StorageUnavailable
from server.tracing import current_trace_id, current_traceparent

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
    if exc.close_connection:
        resp.force_close()
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


# Request ids: a random per-process prefix and a counter, 32 hex digits like a
# UUID's. uuid4() (16 bytes from the kernel each time) was ~8% of a small range
# request in the profile; ids need to be unique, not unguessable.
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


@web.middleware
async def request_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    # Tracing on: a request id of our own is the trace id, one id to search logs and traces by.
    request_id = (
        incoming if _REQUEST_ID_RE.match(incoming) else (current_trace_id() or _new_request_id())
    )
    request[appkeys.REQUEST_ID] = request_id
    trace_response = current_traceparent()
    if trace_response is not None:
        request[appkeys.TRACE_RESPONSE] = trace_response
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    close_after = False
    request_started(request)
    try:
        try:
            _check_request_target(request)
            resp = await handler(request)
        except ClientClosedRequest as exc:
            status = exc.status
            return _client_gone(request, exc)
        except HTTPError as exc:
            resp = _render(exc)
            close_after = exc.close_connection
            if exc.status >= 500:
                log.error("request_failed", code=exc.error_code, error=exc.message)
        except web.HTTPException as exc:
            resp = _render_aiohttp(exc)
        except DATABASE_ERRORS as exc:
            if not database_down(exc):
                raise  # a misused connection, not an outage: a real 500
            resp = _render(DatabaseUnavailable())
            log.warning("database_unavailable", error=str(exc) or type(exc).__name__)
        except StorageUnavailable as exc:
            resp = _render(ObjectStoreUnavailable())
            log.warning("storage_unavailable", error=str(exc))
        except asyncio.CancelledError:
            status = 499  # nginx's "client closed request", for logs and metrics only
            if _transport_closing(request):  # with handler_cancellation, a hang-up cancels
                log.info("client_closed_request", reason="cancelled")
            raise
        except ConnectionError as exc:
            if not _transport_closing(request):
                raise  # another connection failed (storage, a webhook): a real 500
            status = ClientClosedRequest.status
            return _client_gone(request, exc)
        # Refused before `100 Continue`: the client will not send the body it announced.
        close_after = close_after or (continue_withheld(request) and resp.status >= 400)
        if close_after:
            await _answer_and_close(request, resp)
        status = resp.status
        return resp
    except Exception:
        log.exception("unhandled_error", method=request.method, path=redact_links(request.path))
        status = 500
        return error_response(500, "internal_error", "Internal server error")
    finally:
        request_finished(request)
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        request.app[appkeys.METRICS].request_done(route, request.method, status, elapsed)
        # The path only (query strings can carry URL signatures), output tokens cut out.
        log_access(
            log,
            "request",
            method=request.method,
            path=redact_links(request.path),
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            remote=request.remote,
        )


def _transport_closing(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _client_gone(request: web.Request, exc: BaseException) -> web.StreamResponse:
    """The client hung up (a seek, a closed tab): an info line and a 499, never a
    traceback or a 5xx. The connection is dropped, so nothing more is written."""
    log.info("client_closed_request", reason=str(exc) or type(exc).__name__)
    request.protocol.force_close()
    return web.Response(status=ClientClosedRequest.status)


async def _answer_and_close(request: web.Request, resp: web.StreamResponse) -> None:
    """Send `resp` now, then close: the rest of the body is not coming, so aiohttp's
    lingering read (up to 10 s waiting for it) would only hold the connection."""
    resp.force_close()
    try:
        await resp.prepare(request)
        await resp.write_eof()
    except ConnectionError:
        pass
    finally:
        request.protocol.force_close()


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses prepared in handlers.

    With tracing on, `traceresponse` (W3C Trace Context level 2) names the
    server span, so a client that sent its own X-Request-ID still learns the trace."""
    request_id = request.get(appkeys.REQUEST_ID)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    trace_response = request.get(appkeys.TRACE_RESPONSE)
    if trace_response:
        response.headers["traceresponse"] = trace_response
