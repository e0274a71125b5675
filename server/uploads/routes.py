"""Upload endpoints: `curl -T` (raw PUT body) and multipart/form-data POST.

Both defer `100 Continue` (see server/request_body.py) until the request
has passed authentication, the rate limit and the declared-size and quota
checks, so a refused client never sends the body it announced.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import (
    BadRequest,
    LengthRequired,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from server.jobs.serializers import job_json
from server.limits import policy
from server.openapi.spec import STRING, Answer, Param, RouteSpec, described, obj, ref
from server.request_body import body_chunks, defer_continue
from server.serving.disposition import sanitize_filename
from server.uploads.form import MULTIPART_OVERHEAD, UploadForm
from server.uploads.service import StoredUpload
from server.videos.serializers import video_json

UPLOAD_PARAMS = [
    Param("ttl", "query", {"type": "string"}, "Seconds until the video expires"),
    Param("process", "query", {"type": "string"}, "Operations to queue, comma-separated"),
    Param("preset", "query", {"type": "string"}, "A saved preset's operations to queue"),
]
UPLOAD_ERRORS = {
    400: "`invalid_field`, `invalid_multipart`, `missing_file` or `incomplete_body`",
    413: "`payload_too_large` or `quota_exceeded`",
    415: "`unsupported_media_type` (not a video or image) or `expected_multipart`",
    409: "`upload_changed`: an identical image was deleted while this one was stored",
    422: "`undecodable`, or an image over a limit: `image_too_large`, `image_too_small`, "
    "`image_dimensions`, `image_too_many_pixels`",
    429: "`rate_limited`",
}
UPLOADED = {
    201: Answer("Stored and probed", ref("Uploaded")),
    200: Answer("An image the caller already has (same bytes): that image", ref("Uploaded")),
}


@described(
    RouteSpec(
        summary="Upload a file as the raw body (curl -T)",
        tag="uploads",
        body_forms={"application/octet-stream": {"type": "string", "format": "binary"}},
        params=UPLOAD_PARAMS,
        path_schemas={"filename": {"type": "string", "minLength": 1}},
        ok=UPLOADED,
        errors=UPLOAD_ERRORS | {411: "`length_required`: no body"},
    )
)
async def put_upload(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_upload(request, user)
    _refuse_partial_put(request)
    if request.content_length is None and not request.body_exists:
        raise LengthRequired("Send the file as the request body (curl -T FILE URL)")
    uploads = request.app[appkeys.UPLOADS]
    chunk = request.app[appkeys.SETTINGS].upload_chunk_bytes
    # Options are checked before the body is read: a typo costs no upload.
    ttl = uploads.parse_ttl(request.query.get("ttl"))
    process = uploads.parse_process(request.query.get("process"))
    preset = await uploads.parse_preset(user.id, request.query.get("preset"))
    stored = await uploads.receive(
        user_id=user.id,
        filename=sanitize_filename(request.match_info["filename"]),
        # `100 Continue` goes out when the service first pulls: after its
        # declared-size and quota checks.
        chunks=body_chunks(request, chunk),
        declared_size=request.content_length,
        process=process,
        preset=preset,
        ttl_seconds=ttl,
    )
    return _created(stored)


@described(
    RouteSpec(
        summary="Upload a file as multipart/form-data",
        tag="uploads",
        body_forms={
            "multipart/form-data": obj(
                ["file"],
                process=STRING,
                preset=STRING,
                ttl=STRING,
                file={"type": "string", "format": "binary"},
            )
        },
        params=UPLOAD_PARAMS,
        ok=UPLOADED,
        errors=UPLOAD_ERRORS,
    )
)
async def post_upload(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_upload(request, user)
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Use multipart/form-data with a 'file' field, or PUT the raw body",
            code="expected_multipart",
        )
    uploads = request.app[appkeys.UPLOADS]
    settings = request.app[appkeys.SETTINGS]
    if request.content_length is not None:
        if request.content_length > settings.max_upload_bytes + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(f"Uploads are limited to {settings.max_upload_bytes} bytes")
        # The file is at least the body less its framing: refuse before `100 Continue`.
        limits = await uploads.limits(user.id)
        limits.check_declared(request.content_length - MULTIPART_OVERHEAD)
    form = UploadForm(request, settings.upload_chunk_bytes)
    fields, filename = await form.fields()
    ttl = uploads.parse_ttl(fields.get("ttl", request.query.get("ttl")))
    process = uploads.parse_process(fields.get("process", request.query.get("process")))
    preset = await uploads.parse_preset(user.id, fields.get("preset", request.query.get("preset")))
    stored = await uploads.receive(
        user_id=user.id,
        filename=sanitize_filename(filename),
        chunks=form.file_chunks(),
        declared_size=None,
        process=process,
        preset=preset,
        ttl_seconds=ttl,
    )
    return _created(stored)


@described(
    RouteSpec(
        summary="A PUT without a file name: always refused, saying how to name it",
        tag="uploads",
        ok={},
        errors={405: "`upload_needs_filename`: end the URL with the name (or a slash, for curl)"},
    )
)
async def put_without_filename(request: web.Request) -> web.Response:
    """`curl -T FILE URL` without the trailing slash: say how to name the upload."""
    raise MethodNotAllowed(
        "POST",
        "PUT needs the file name in the URL: end the URL with a slash "
        "(curl -T FILE https://host/api/v1/uploads/ appends the name) or PUT to "
        "/api/v1/uploads/NAME; POST takes a multipart form",
        code="upload_needs_filename",
    )


def _refuse_partial_put(request: web.Request) -> None:
    """RFC 9110 §14.5: a server that does not apply partial PUTs must refuse them,
    or a resumed `curl -C N -T` would be stored as a truncated whole file."""
    if "Content-Range" in request.headers:
        raise BadRequest(
            "A PUT with Content-Range is not applied as part of a file: send the whole "
            "file, or resume with the tus protocol at /api/v1/tus/ (see the README)",
            code="partial_upload_unsupported",
        )


def _created(stored: StoredUpload) -> web.Response:
    body = video_json(stored.video)
    body["jobs"] = [job_json(job) for job in stored.jobs]
    # 200: the same bytes are an image the caller already has; nothing new was stored.
    return web.json_response(body, status=200 if stored.duplicate else 201)


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/uploads/{filename}", put_upload, expect_handler=defer_continue)
    app.router.add_post("/api/v1/uploads", post_upload, expect_handler=defer_continue)
    for path in ("/api/v1/uploads", "/api/v1/uploads/"):
        app.router.add_put(path, put_without_filename, expect_handler=defer_continue)
