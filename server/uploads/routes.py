"""Upload endpoints: `curl -T` (raw PUT body) and multipart/form-data POST."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web

from server import keys
from server.auth.middleware import current_user
from server.delivery.disposition import sanitize_filename
from server.errors import BadRequest, LengthRequired, PayloadTooLarge, UnsupportedMediaType
from server.uploads.service import receive_upload
from server.videos.views import video_json

FILE_FIELD = "file"
# Multipart framing around the file: boundaries and part headers.
MULTIPART_OVERHEAD = 64 * 1024


async def put_upload(request: web.Request) -> web.Response:
    user = current_user(request)
    if request.content_length is None and not request.body_exists:
        raise LengthRequired("Send the file as the request body (curl -T FILE URL)")
    chunk = request.app[keys.SETTINGS].upload_chunk_bytes
    video = await receive_upload(
        request.app,
        user_id=user.id,
        filename=sanitize_filename(request.match_info["filename"]),
        chunks=request.content.iter_chunked(chunk).__aiter__(),
        declared_size=request.content_length,
    )
    return web.json_response(video_json(video), status=201)


async def post_upload(request: web.Request) -> web.Response:
    user = current_user(request)
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Use multipart/form-data with a 'file' field, or PUT the raw body",
            code="expected_multipart",
        )
    settings = request.app[keys.SETTINGS]
    if (
        request.content_length is not None
        and request.content_length > settings.max_upload_bytes + MULTIPART_OVERHEAD
    ):
        raise PayloadTooLarge(f"Uploads are limited to {settings.max_upload_bytes} bytes")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise BadRequest("Malformed multipart body", code="invalid_multipart") from None
    part = await _find_file_part(reader)
    video = await receive_upload(
        request.app,
        user_id=user.id,
        filename=sanitize_filename(part.filename or "upload"),
        chunks=_file_chunks(reader, part, settings.upload_chunk_bytes),
        declared_size=None,
    )
    return web.json_response(video_json(video), status=201)


async def _find_file_part(reader: MultipartReader) -> BodyPartReader:
    while True:
        try:
            part = await reader.next()
        except ValueError:
            raise BadRequest("Malformed multipart body", code="invalid_multipart") from None
        if part is None:
            raise BadRequest(f"The form has no '{FILE_FIELD}' field", code="missing_file")
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported", code="invalid_multipart")
        if part.name == FILE_FIELD:
            return part
        # Small fields before the file are read and dropped (none are defined yet).
        await part.release()


async def _file_chunks(
    reader: MultipartReader, part: BodyPartReader, size: int
) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(size):
        yield chunk
    # The file must be the form's last field: anything after it would arrive
    # after the object is committed. Checked before the upload is committed.
    if await reader.next() is not None:
        raise BadRequest(
            f"'{FILE_FIELD}' must be the last field of the form", code="invalid_multipart"
        )


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/uploads/{filename}", put_upload)
    app.router.add_post("/api/v1/uploads", post_upload)
