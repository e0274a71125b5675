"""`/api/v1/images`: the image library — list (search-backed), one image, its thumbnail.

Images are also in `GET /api/v1/videos` (filter them with `?kind=image`); these
routes add what only images have: a signed thumbnail URL with each one, for
`<img src>`, which sends no headers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import NotFound
from server.http import external_url, path_uuid, query_int
from server.images.serializers import (
    ThumbnailLink,
    image_json,
    image_page_json,
    thumbnail_path,
)
from server.images.service import thumbnail_of
from server.object_keys import image_thumbnail_key
from server.openapi.components import SERVE_PARAMS, SERVED
from server.openapi.spec import (
    CURSOR,
    LIMIT,
    STRING,
    TIME,
    Answer,
    Param,
    RouteSpec,
    described,
    nullable,
    obj,
    page_of,
    ref,
)
from server.search.params import parse_search
from server.serving.cors import signed_media
from server.serving.serve import StoredFile, serve_stored_file
from server.videos.model import Video

_THUMBNAIL = nullable(
    obj(
        ["url", "expires_at", "path"],
        url=STRING,
        expires_at=TIME,
        path=STRING,
        width={"type": "integer"},
        height={"type": "integer"},
    )
)
_IMAGE = {"allOf": [ref("Video"), obj(["thumbnail"], thumbnail=_THUMBNAIL)]}


def _thumbnail_link(request: web.Request) -> ThumbnailLink:
    signer = request.app[appkeys.SIGNER]
    ttl = request.app[appkeys.SETTINGS].signed_url_ttl_seconds

    def link(image: Video) -> tuple[str, str]:
        path = thumbnail_path(image.id)
        query, expires_at = signer.signed_query(path, ttl)
        url = external_url(request, path) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url, datetime.fromtimestamp(expires_at, UTC).isoformat()

    return link


@described(
    RouteSpec(
        summary="The caller's images, newest first, each with a signed thumbnail URL",
        tag="images",
        description="The video search with `kind=image` fixed: `q`, `tag`, `uploaded` and "
        "`sort` work as on `GET /api/v1/videos`.",
        params=[
            LIMIT,
            CURSOR,
            Param("q", "query", {"type": "string", "maxLength": 200}, "Words to search for"),
            Param("tag", "query", {"type": "string", "maxLength": 40}, "Only with this tag"),
        ],
        ok={200: Answer("A page", page_of(_IMAGE))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_images(request: web.Request) -> web.Response:
    user = current_user(request)
    query = parse_search(request.query, limit=query_int(request, "limit", 20, lo=1, hi=100))
    found = await request.app[appkeys.IMAGES].page(user.id, query)
    body = image_page_json(found, _thumbnail_link(request))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@described(
    RouteSpec(
        summary="One image, with a signed thumbnail URL",
        tag="images",
        ok={200: Answer("The image", _IMAGE)},
        errors={404: "`image_not_found` (also for a video's id)"},
    )
)
async def get_image(request: web.Request) -> web.Response:
    image = await request.app[appkeys.IMAGES].get(current_user(request).id, path_uuid(request))
    body = image_json(image, _thumbnail_link(request))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _signed(request: web.Request) -> bool:
    return "signature" in request.query


@described(
    RouteSpec(
        summary="The image's 512x512 thumbnail (JPEG, no EXIF), with ranges (HEAD too)",
        tag="images",
        description="Bearer auth, or the signed query of the image's `thumbnail.url`.",
        params=SERVE_PARAMS,
        ok=SERVED,
        errors={
            404: "`image_not_found`, `thumbnail_not_found` or `invalid_signature`",
            416: "`range_not_satisfiable`",
        },
    )
)
@signed_media(when=_signed)
async def image_thumbnail(request: web.Request) -> web.StreamResponse:
    image_id = path_uuid(request)
    images = request.app[appkeys.IMAGES]
    if _signed(request):
        if not request.app[appkeys.SIGNER].verify_query(request.path, request.query):
            raise NotFound("No such image, or the link has expired", code="invalid_signature")
        image = await images.get_by_link(image_id)
    else:
        image = await images.get(current_user(request).id, image_id)
    thumbnail = thumbnail_of(image)
    size = thumbnail.get("size") if thumbnail else None
    if not isinstance(size, int):
        raise NotFound("This image has no thumbnail", code="thumbnail_not_found")
    stem = image.filename.rsplit(".", 1)[0] or "image"
    stored = StoredFile(
        key=image_thumbnail_key(image.user_id, image.id),
        size=size,
        etag_token=f"{image.sha256}-thumbnail",
        last_modified=image.created_at,
        content_type="image/jpeg",
        filename=f"{stem}-thumbnail.jpg",
    )
    download = request.query.get("download") in {"1", "true"}
    return await serve_stored_file(request, request.app[appkeys.STORAGE], stored, download=download)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/images", list_images)
    app.router.add_get("/api/v1/images/{id}", get_image)
    app.router.add_get("/api/v1/images/{id}/thumbnail", image_thumbnail)  # HEAD too
