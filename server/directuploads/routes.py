"""`/api/v1/direct-uploads`: one-time upload URLs (create, show, cancel) and the URL
itself (`PUT /api/v1/direct-uploads/u/{token}`, no credentials: the token is them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.bodies import read_body
from server.directuploads.model import DirectUpload
from server.directuploads.schemas import CreateDirectUpload
from server.directuploads.serializers import direct_upload_json
from server.errors import BadRequest, HTTPError, LengthRequired, UnsupportedMediaType
from server.http import external_url, path_uuid
from server.jobs.serializers import job_json
from server.limits import policy
from server.openapi.spec import Answer, RouteSpec, described, nullable, obj
from server.request_body import body_chunks, defer_continue
from server.serving.disposition import sanitize_filename
from server.tus import headers as tus_headers
from server.tus import serializers as tus_serializers
from server.tus.routes import TUS_ERRORS, TUS_HEADERS, patch_body, tus_endpoint
from server.videos.serializers import video_json

_DIRECT_UPLOAD = obj(
    ["id", "status", "max_size", "expires_at"],
    id={"type": "string", "format": "uuid"},
    status={"enum": ["waiting", "uploading", "done", "expired", "canceled"]},
    max_size={"type": "integer"},
    allowed_types={"type": "array", "items": {"type": "string"}},
    process={"type": "array", "items": {"type": "string"}},
    ttl=nullable({"type": "integer"}),
    preset=nullable({"type": "string"}),
    metadata={"type": "object"},
    cors_origin=nullable({"type": "string"}),
    video_id=nullable({"type": "string", "format": "uuid"}),
    created_at={"type": "string", "format": "date-time"},
    expires_at={"type": "string", "format": "date-time"},
    url={"type": "string", "format": "uri"},
)
_TOKEN = {"token": {"type": "string", "minLength": 1, "maxLength": 100}}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/direct-uploads", create)
    app.router.add_get("/api/v1/direct-uploads/{id}", show)
    app.router.add_post("/api/v1/direct-uploads/{id}/cancel", cancel)
    app.router.add_put("/api/v1/direct-uploads/u/{token}", put, expect_handler=defer_continue)
    app.router.add_route("OPTIONS", "/api/v1/direct-uploads/u/{token}", preflight)
    # The same URL for tus clients: creation at .../tus/, then HEAD and PATCH.
    tus_base = "/api/v1/direct-uploads/u/{token}/tus/"
    app.router.add_route("OPTIONS", tus_base, tus_options)
    app.router.add_post(tus_base, tus_create)
    app.router.add_route("OPTIONS", tus_base + "{id}", tus_options)
    app.router.add_route("HEAD", tus_base + "{id}", tus_head)
    app.router.add_patch(tus_base + "{id}", tus_patch)


@described(
    RouteSpec(
        summary="Create a one-time upload URL for someone without credentials",
        tag="uploads",
        body=CreateDirectUpload,
        ok={201: Answer("The direct upload, with its `url` (shown once)", _DIRECT_UPLOAD)},
        errors={
            400: "`invalid_field` naming the field, `unknown_operation`, `preset_not_found` "
            "or `invalid_ttl`",
            429: "`rate_limited`",
        },
    )
)
async def create(request: web.Request) -> web.Response:
    user = current_user(request)
    # A one-time URL is an upload handed to someone else: it counts against the
    # creator's upload limit when made, so URLs cannot be minted without bound.
    await policy.limit_upload(request, user)
    body = await read_body(request, CreateDirectUpload)
    service = request.app[appkeys.DIRECT_UPLOADS]
    max_bytes = service.max_size if body.max_size is None else body.max_size
    if max_bytes > service.max_size:  # a setting: beyond what the model can publish
        raise BadRequest(
            f"'max_size' must be a whole number from 1 to {service.max_size}",
            code="invalid_field",
            field="max_size",
        )
    created = await service.create(
        user.id,
        max_bytes=max_bytes,
        expires_in_seconds=body.expires_in,
        allowed_types=body.allowed_types,
        process=service.parse_process(body.process),
        ttl_seconds=service.parse_ttl(body.ttl),
        metadata=body.metadata,
        cors_origin=body.cors_origin,
        preset=await service.parse_preset(user.id, body.preset),
    )
    url = external_url(request, f"/api/v1/direct-uploads/u/{created.token}")
    return web.json_response(direct_upload_json(created.upload, url=url), status=201)


@described(
    RouteSpec(
        summary="A direct upload's state (waiting, uploading, done with its video, ...)",
        tag="uploads",
        ok={200: Answer("The direct upload", _DIRECT_UPLOAD)},
        errors={404: "`direct_upload_not_found`"},
    )
)
async def show(request: web.Request) -> web.Response:
    upload = await request.app[appkeys.DIRECT_UPLOADS].get(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response(direct_upload_json(upload))


@described(
    RouteSpec(
        summary="Cancel a direct upload: its URL is dead from now on",
        tag="uploads",
        ok={200: Answer("The canceled direct upload", _DIRECT_UPLOAD)},
        errors={
            404: "`direct_upload_not_found`",
            409: "`direct_upload_finished` (done, canceled or expired)",
        },
    )
)
async def cancel(request: web.Request) -> web.Response:
    upload = await request.app[appkeys.DIRECT_UPLOADS].cancel(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response(direct_upload_json(upload))


def _cors(request: web.Request, upload: DirectUpload) -> dict[str, str]:
    """CORS headers for the creator's origin only: the URL is a secret, not a public
    resource, and other pages have no business reading its answers."""
    origin = request.headers.get("Origin")
    if upload.cors_origin is None or origin != upload.cors_origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@described(
    RouteSpec(
        summary="Upload the file to a one-time URL (raw body, no credentials)",
        tag="uploads",
        body_forms={"application/octet-stream": {"type": "string", "format": "binary"}},
        path_schemas=_TOKEN,
        ok={
            201: Answer("Stored: the creator's video", obj(["id"])),
            200: Answer("An image the creator already has (same bytes): that image", obj(["id"])),
        },
        errors={
            400: "`incomplete_body`, or `preset_not_found`: the creator's preset was "
            "deleted or renamed since (the URL stays usable)",
            403: "`account_disabled`: the URL's creator is disabled",
            404: "`direct_upload_not_found`",
            409: "`direct_upload_in_progress` or `upload_changed`",
            410: "`direct_upload_used`, `direct_upload_expired` or `direct_upload_canceled`",
            411: "`length_required`",
            413: "`payload_too_large` (over the URL's `max_size`) or `quota_exceeded`",
            415: "`type_not_allowed` or `unsupported_media_type`",
            422: "`undecodable`, or an image over a limit (`image_too_large`, ...)",
        },
    )
)
async def put(request: web.Request) -> web.Response:
    service = request.app[appkeys.DIRECT_UPLOADS]
    token = request.match_info["token"]
    cors = _cors(request, await service.for_token(token))
    try:
        if request.content_length is None and not request.body_exists:
            raise LengthRequired("Send the file as the request body")
        _done, stored = await service.receive(
            token,
            filename=sanitize_filename(request.query.get("filename") or "upload"),
            chunks=body_chunks(request, request.app[appkeys.SETTINGS].upload_chunk_bytes),
            declared_size=request.content_length,
        )
    except HTTPError as exc:
        exc.headers.update(cors)
        raise
    body = video_json(stored.video)
    body["jobs"] = [job_json(job) for job in stored.jobs]
    status = 200 if stored.duplicate else 201
    return web.json_response(body, status=status, headers=cors)


@described(
    RouteSpec(
        summary="CORS preflight of a one-time upload URL",
        tag="uploads",
        path_schemas=_TOKEN,
        ok={204: Answer("Allowed for the URL's `cors_origin` only", None)},
        errors={404: "`direct_upload_not_found`"},
    )
)
async def preflight(request: web.Request) -> web.Response:
    upload = await request.app[appkeys.DIRECT_UPLOADS].for_token(request.match_info["token"])
    headers = _cors(request, upload)
    if headers:
        headers |= {
            "Access-Control-Allow-Methods": "PUT",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
    return web.Response(status=204, headers=headers)


# --- tus at the same URL ----------------------------------------------------------------

# What a tus client in a browser must be allowed to send and read.
_TUS_ALLOW_HEADERS = (
    "Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Upload-Checksum, Content-Type"
)
_TUS_EXPOSE_HEADERS = (
    "Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Upload-Offset, "
    "Upload-Length, Upload-Expires, Upload-Metadata, Frameflow-Video-Id, "
    "Frameflow-Video-Location"
)
_TUS_PARAMS: dict[str, dict[str, Any]] = {
    "token": _TOKEN["token"],
    "id": {"type": "string", "format": "uuid"},
}


def _tus_cors(request: web.Request, upload: DirectUpload) -> dict[str, str]:
    cors = _cors(request, upload)
    if cors:
        cors["Access-Control-Expose-Headers"] = _TUS_EXPOSE_HEADERS
    return cors


def _url_for(request: web.Request) -> Callable[[str], str]:
    return functools.partial(external_url, request)


async def _with_cors(
    request: web.Request, answer: Callable[[], Any], cors: dict[str, str]
) -> web.Response:
    try:
        response: web.Response = await answer()
    except HTTPError as exc:
        exc.headers.update(cors)
        raise
    response.headers.update(cors)
    return response


async def tus_options(request: web.Request) -> web.Response:
    service = request.app[appkeys.DIRECT_UPLOADS]
    upload = await service.for_token(request.match_info["token"])
    response_headers = tus_serializers.discovery_headers(upload.max_bytes)
    cors = _cors(request, upload)
    if cors:
        response_headers |= cors | {
            "Access-Control-Allow-Methods": "POST, HEAD, PATCH",
            "Access-Control-Allow-Headers": _TUS_ALLOW_HEADERS,
            "Access-Control-Expose-Headers": _TUS_EXPOSE_HEADERS,
            "Access-Control-Max-Age": "600",
        }
    return web.Response(status=204, headers=response_headers)


@described(
    RouteSpec(
        summary="Create the tus upload of a one-time URL (no credentials)",
        tag="uploads",
        params=TUS_HEADERS,
        path_schemas=_TOKEN,
        ok={201: Answer("Created: `Location` names the upload", None)},
        errors=TUS_ERRORS
        | {
            403: f"{TUS_ERRORS[403]} or `account_disabled` (the URL's creator is disabled)",
            410: "`direct_upload_used`, `direct_upload_expired` or `direct_upload_canceled`",
        },
    )
)
@tus_endpoint
async def tus_create(request: web.Request) -> web.Response:
    service = request.app[appkeys.DIRECT_UPLOADS]
    token = request.match_info["token"]
    cors = _tus_cors(request, await service.for_token(token))

    async def answer() -> web.Response:
        if request.body_exists:
            raise BadRequest(
                "Send the bytes with PATCH after creating the upload",
                code="creation_with_upload_unsupported",
            )
        metadata = tus_headers.parse_metadata(request.headers.get("Upload-Metadata"))
        upload = await service.tus_create(
            token,
            length=tus_headers.parse_creation_length(request.headers),
            metadata=metadata,
            filename=sanitize_filename(metadata.get("filename") or "upload"),
        )
        response_headers = tus_serializers.offset_headers(upload, _url_for(request))
        response_headers["Location"] = external_url(
            request, f"/api/v1/direct-uploads/u/{token}/tus/{upload.id}"
        )
        return web.Response(status=201, headers=response_headers)

    return await _with_cors(request, answer, cors)


@tus_endpoint
async def tus_head(request: web.Request) -> web.Response:
    service = request.app[appkeys.DIRECT_UPLOADS]
    token = request.match_info["token"]
    cors = _tus_cors(request, await service.for_token(token))

    async def answer() -> web.Response:
        upload = await service.tus_status(token, path_uuid(request))
        return web.Response(
            status=200, headers=tus_serializers.head_headers(upload, _url_for(request))
        )

    return await _with_cors(request, answer, cors)


@described(
    RouteSpec(
        summary="Append bytes to the tus upload of a one-time URL (no credentials)",
        tag="uploads",
        params=TUS_HEADERS,
        body_forms={"application/offset+octet-stream": {"type": "string", "format": "binary"}},
        path_schemas=_TUS_PARAMS,
        ok={204: Answer("Stored: `Upload-Offset`; once complete, `Frameflow-Video-Id`", None)},
        errors=TUS_ERRORS
        | {
            410: "`direct_upload_expired`, `direct_upload_canceled`, "
            "`upload_expired` or the refusal of the finished file"
        },
    )
)
@tus_endpoint
async def tus_patch(request: web.Request) -> web.Response:
    service = request.app[appkeys.DIRECT_UPLOADS]
    token = request.match_info["token"]
    cors = _tus_cors(request, await service.for_token(token))

    async def answer() -> web.Response:
        offset = tus_headers.parse_size("Upload-Offset", request.headers.get("Upload-Offset"))
        if offset is None:
            raise tus_headers.missing("Upload-Offset")
        if request.content_type != tus_headers.OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(
                f"Send the bytes as {tus_headers.OFFSET_CONTENT_TYPE}",
                code="expected_offset_octet_stream",
            )
        body = patch_body(request) or tus_headers.no_chunks()
        upload = await service.tus_append(
            token,
            path_uuid(request),
            offset=offset,
            chunks=body,
            content_length=request.content_length,
            checksum=tus_headers.parse_checksum(request.headers.get("Upload-Checksum")),
        )
        return web.Response(
            status=204, headers=tus_serializers.offset_headers(upload, _url_for(request))
        )

    return await _with_cors(request, answer, cors)
