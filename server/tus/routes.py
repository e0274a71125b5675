"""tus 1.0 endpoints under /api/v1/tus/: OPTIONS, POST (creation), HEAD, PATCH, DELETE."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import HTTPError, PreconditionFailed, UnsupportedMediaType
from server.http import external_url, path_uuid
from server.limits import policy
from server.openapi.spec import Answer, Param, RouteSpec, described
from server.request_body import body_chunks
from server.serving.disposition import sanitize_filename
from server.tus import headers, serializers

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tus_endpoint(handler: Handler) -> Handler:
    """Every tus answer, errors included, carries Tus-Resumable; requests must speak 1.0.0."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            if request.headers.get("Tus-Resumable") != headers.TUS_VERSION:
                raise PreconditionFailed(
                    f"This server speaks tus {headers.TUS_VERSION} only (Tus-Resumable header)",
                    code="unsupported_tus_version",
                    headers={"Tus-Version": headers.TUS_VERSION},
                )
            return await handler(request)
        except HTTPError as exc:
            exc.headers["Tus-Resumable"] = headers.TUS_VERSION
            raise

    return wrapped


def _url_for(request: web.Request) -> Callable[[str], str]:
    return functools.partial(external_url, request)


def patch_body(request: web.Request) -> AsyncIterator[bytes] | None:
    """The PATCH-style body, or None when the request has none."""
    if not request.body_exists:
        return None
    if request.content_type != headers.OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(
            f"Send the bytes as {headers.OFFSET_CONTENT_TYPE}", code="expected_offset_octet_stream"
        )
    # Gathered into chunks (few, large appends), never larger than a checkpoint so
    # a crash still loses at most `tus_checkpoint_bytes`; each read is under the
    # body idle deadline: a PATCH that stalls gets a 408 and keeps what arrived,
    # instead of holding its upload's lock and a database connection.
    settings = request.app[appkeys.SETTINGS]
    return body_chunks(request, min(settings.upload_chunk_bytes, settings.tus_checkpoint_bytes))


async def options(request: web.Request) -> web.Response:
    # Discovery needs no credentials: browsers send it as a CORS preflight.
    return web.Response(
        status=204, headers=serializers.discovery_headers(request.app[appkeys.TUS].max_size)
    )


# The contract (OpenAPI): every tus request carries Tus-Resumable: 1.0.0.
TUS_HEADERS = (
    Param("Tus-Resumable", "header", {"type": "string", "enum": ["1.0.0"]}, required=True),
)
TUS_ERRORS = {
    400: "`invalid_header`, `missing_header` or `unsupported_checksum`",
    403: "`too_many_unfinished_uploads`",
    404: "`upload_not_found`",
    409: "`offset_mismatch` (the real `Upload-Offset` is in the headers), `upload_changed` "
    "or `upload_finished`",
    410: "`upload_expired`, `upload_gone` or `upload_lost`",
    412: "`unsupported_tus_version`",
    413: "`payload_too_large` or `quota_exceeded`",
    415: "`expected_offset_octet_stream`",
    422: "The finished file cannot be decoded",
    423: "`upload_locked`: another PATCH is writing",
    429: "`rate_limited`",
    460: "`checksum_mismatch`: the chunk was discarded",
}
_OCTETS = {"application/offset+octet-stream": {"type": "string", "format": "binary"}}
_ID = {"id": {"type": "string", "format": "uuid"}}


@described(
    RouteSpec(
        summary="Create a resumable upload (tus creation, optionally with its first bytes)",
        tag="uploads",
        params=TUS_HEADERS,
        body_forms=_OCTETS,
        ok={201: Answer("Created: `Location` names the upload", None)},
        errors=TUS_ERRORS,
    )
)
@tus_endpoint
async def create(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_upload(request, user)
    length = headers.parse_creation_length(request.headers)
    metadata = headers.parse_metadata(request.headers.get("Upload-Metadata"))
    created = await request.app[appkeys.TUS].create(
        user.id,
        length=length,
        metadata=metadata,
        filename=sanitize_filename(metadata.get("filename") or "upload"),
        body=patch_body(request),
        content_length=request.content_length,
        checksum=headers.parse_checksum(request.headers.get("Upload-Checksum")),
    )
    location = external_url(request, f"/api/v1/tus/{created.upload.id}")
    if created.body_error is not None:
        created.body_error.headers["Location"] = location
        raise created.body_error
    response_headers = serializers.offset_headers(created.upload, _url_for(request))
    response_headers["Location"] = location
    return web.Response(status=201, headers=response_headers)


@tus_endpoint
async def head(request: web.Request) -> web.Response:
    user = current_user(request)
    upload = await request.app[appkeys.TUS].status(user.id, path_uuid(request))
    return web.Response(status=200, headers=serializers.head_headers(upload, _url_for(request)))


@described(
    RouteSpec(
        summary="Append bytes at Upload-Offset (tus core)",
        tag="uploads",
        params=TUS_HEADERS,
        body_forms=_OCTETS,
        path_schemas=_ID,
        ok={204: Answer("Stored: `Upload-Offset`; once complete, `Frameflow-Video-Id`", None)},
        errors=TUS_ERRORS,
    )
)
@tus_endpoint
async def patch(request: web.Request) -> web.Response:
    user = current_user(request)
    offset = headers.parse_size("Upload-Offset", request.headers.get("Upload-Offset"))
    if offset is None:
        raise headers.missing("Upload-Offset")
    body = patch_body(request)
    if body is None and request.content_type != headers.OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(
            f"Send the bytes as {headers.OFFSET_CONTENT_TYPE}", code="expected_offset_octet_stream"
        )
    upload = await request.app[appkeys.TUS].append(
        user.id,
        path_uuid(request),
        offset=offset,
        chunks=body if body is not None else headers.no_chunks(),
        content_length=request.content_length,
        checksum=headers.parse_checksum(request.headers.get("Upload-Checksum")),
        length=headers.parse_size("Upload-Length", request.headers.get("Upload-Length")),
    )
    return web.Response(status=204, headers=serializers.offset_headers(upload, _url_for(request)))


@described(
    RouteSpec(
        summary="Terminate an unfinished upload (tus termination)",
        tag="uploads",
        params=TUS_HEADERS,
        path_schemas=_ID,
        ok={204: Answer("Terminated: its bytes and quota hold are gone", None)},
        errors=TUS_ERRORS,
    )
)
@tus_endpoint
async def delete(request: web.Request) -> web.Response:
    user = current_user(request)
    await request.app[appkeys.TUS].terminate(user.id, path_uuid(request))
    return web.Response(status=204, headers={"Tus-Resumable": headers.TUS_VERSION})


def add_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/api/v1/tus/", options)
    app.router.add_post("/api/v1/tus/", create)
    app.router.add_route("OPTIONS", "/api/v1/tus/{id}", options)
    app.router.add_route("HEAD", "/api/v1/tus/{id}", head)
    app.router.add_patch("/api/v1/tus/{id}", patch)
    app.router.add_delete("/api/v1/tus/{id}", delete)
