"""Upload endpoints: `curl -T` (raw PUT body) and multipart/form-data POST."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from server import appkeys
from server.auth.middleware import current_user
from server.errors import BadRequest, LengthRequired, PayloadTooLarge, UnsupportedMediaType
from server.jobs.serializers import job_json
from server.limits import policy
from server.openapi.spec import STRING, Answer, Param, RouteSpec, described, obj, ref
from server.serving.disposition import sanitize_filename
from server.uploads.service import StoredUpload
from server.videos.serializers import video_json

FILE_FIELD = "file"
TEXT_FIELDS = frozenset({"process", "ttl"})
MAX_FIELD_BYTES = 1024
# Multipart framing around the file: boundaries and part headers.
MULTIPART_OVERHEAD = 64 * 1024


UPLOAD_PARAMS = [
    Param("ttl", "query", {"type": "string"}, "Seconds until the video expires"),
    Param("process", "query", {"type": "string"}, "Operations to queue, comma-separated"),
]
UPLOAD_ERRORS = {
    400: "`invalid_field`, `invalid_multipart`, `missing_file` or `incomplete_body`",
    413: "`payload_too_large` or `quota_exceeded`",
    415: "`unsupported_media_type` (not a video or image) or `expected_multipart`",
    422: "The file cannot be decoded",
    429: "`rate_limited`",
}


@described(
    RouteSpec(
        summary="Upload a file as the raw body (curl -T)",
        tag="uploads",
        body_forms={"application/octet-stream": {"type": "string", "format": "binary"}},
        params=UPLOAD_PARAMS,
        path_schemas={"filename": {"type": "string", "minLength": 1}},
        ok={201: Answer("Stored and probed", ref("Uploaded"))},
        errors=UPLOAD_ERRORS | {411: "`length_required`: no body"},
    )
)
async def put_upload(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_upload(request, user)
    if request.content_length is None and not request.body_exists:
        raise LengthRequired("Send the file as the request body (curl -T FILE URL)")
    uploads = request.app[appkeys.UPLOADS]
    chunk = request.app[appkeys.SETTINGS].upload_chunk_bytes
    # Options are checked before the body is read: a typo costs no upload.
    ttl = uploads.parse_ttl(request.query.get("ttl"))
    process = uploads.parse_process(request.query.get("process"))
    stored = await uploads.receive(
        user_id=user.id,
        filename=sanitize_filename(request.match_info["filename"]),
        chunks=request.content.iter_chunked(chunk).__aiter__(),
        declared_size=request.content_length,
        process=process,
        ttl_seconds=ttl,
    )
    return _created(stored)


@described(
    RouteSpec(
        summary="Upload a file as multipart/form-data",
        tag="uploads",
        body_forms={
            "multipart/form-data": obj(
                ["file"], process=STRING, ttl=STRING, file={"type": "string", "format": "binary"}
            )
        },
        params=UPLOAD_PARAMS,
        ok={201: Answer("Stored and probed", ref("Uploaded"))},
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
    settings = request.app[appkeys.SETTINGS]
    if (
        request.content_length is not None
        and request.content_length > settings.max_upload_bytes + MULTIPART_OVERHEAD
    ):
        raise PayloadTooLarge(f"Uploads are limited to {settings.max_upload_bytes} bytes")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise BadRequest("Malformed multipart body", code="invalid_multipart") from None
    fields, part = await _read_until_file(reader)
    uploads = request.app[appkeys.UPLOADS]
    ttl = uploads.parse_ttl(fields.get("ttl", request.query.get("ttl")))
    process = uploads.parse_process(fields.get("process", request.query.get("process")))
    stored = await uploads.receive(
        user_id=user.id,
        filename=sanitize_filename(part.filename or "upload"),
        chunks=_file_chunks(reader, part, settings.upload_chunk_bytes),
        declared_size=None,
        process=process,
        ttl_seconds=ttl,
    )
    return _created(stored)


def _created(stored: StoredUpload) -> web.Response:
    body = video_json(stored.video)
    body["jobs"] = [job_json(job) for job in stored.jobs]
    return web.json_response(body, status=201)


async def _read_until_file(reader: MultipartReader) -> tuple[dict[str, str], BodyPartReader]:
    """Small text fields before the file (`process`, `ttl`), then the file part itself."""
    fields: dict[str, str] = {}
    while True:
        try:
            part = await reader.next()
        # aiohttp raises BadHttpMessage for a part header it cannot parse (a control
        # character in a field name): the client's mistake, not a 500.
        except (ValueError, BadHttpMessage):
            raise BadRequest("Malformed multipart body", code="invalid_multipart") from None
        if part is None:
            raise BadRequest(f"The form has no '{FILE_FIELD}' field", code="missing_file")
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported", code="invalid_multipart")
        if part.name == FILE_FIELD:
            return fields, part
        if part.name in TEXT_FIELDS:
            raw = await part.read_chunk(MAX_FIELD_BYTES + 1)
            if len(raw) > MAX_FIELD_BYTES or await part.read_chunk(1):
                raise BadRequest(
                    f"'{part.name}' is too long", code="invalid_field", field=part.name
                )
            fields[part.name] = raw.decode("utf-8", errors="replace")
        else:
            await part.release()  # unknown fields are ignored


async def _file_chunks(
    reader: MultipartReader, part: BodyPartReader, size: int
) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(size):
        yield chunk
    # The file must be the form's last field: anything after it would arrive
    # after the object is committed. Checked before the upload is committed.
    try:
        after = await reader.next()
    except (ValueError, BadHttpMessage):
        raise BadRequest("Malformed multipart body", code="invalid_multipart") from None
    if after is not None:
        raise BadRequest(
            f"'{FILE_FIELD}' must be the last field of the form", code="invalid_multipart"
        )


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/uploads/{filename}", put_upload)
    app.router.add_post("/api/v1/uploads", post_upload)
