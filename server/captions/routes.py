"""`/api/v1/videos/{id}/captions`: add (SRT or WebVTT, served as WebVTT), list, delete,
and the WebVTT itself — with bearer auth, or a signed URL with CORS (`<track src>`)."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.captions.model import Caption
from server.captions.serializers import caption_json, caption_path
from server.captions.service import parse_label, parse_language
from server.captions.serving import vtt_response
from server.errors import NotFound, PayloadTooLarge
from server.http import external_url, path_uuid
from server.openapi.spec import (
    INTEGER,
    STRING,
    TIME,
    UUID,
    Answer,
    Param,
    RouteSpec,
    described,
    obj,
    page_of,
)
from server.request_body import read_at_most
from server.serving.cors import preflight_for, signed_media

CAPTION = obj(
    ["language", "label", "url"],
    language=STRING,
    label=STRING,
    source_format={"enum": ["vtt", "srt"]},
    cue_count=INTEGER,
    size=INTEGER,
    created_at=TIME,
    url=STRING,
)
_PATHS = {"id": UUID, "language": STRING}
# A caption's signed URL lasts this long; the page asks for the list again to renew.
CAPTION_URL_SECONDS = 6 * 3600


def _json(request: web.Request, caption: Caption) -> dict[str, object]:
    path = caption_path(caption)
    query, _ = request.app[appkeys.SIGNER].signed_query(path, CAPTION_URL_SECONDS)
    url = external_url(request, path) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return caption_json(caption, url)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Caption files are limited to {limit} bytes", limit=limit)
    # Each read under the body idle deadline: a stalled caption upload gets a 408.
    data = await read_at_most(request, limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Caption files are limited to {limit} bytes", limit=limit)
    return data


@described(
    RouteSpec(
        summary="Add captions in one language (WebVTT or SRT as the body; stored as WebVTT)",
        tag="videos",
        params=[
            Param("language", "query", STRING, "A language tag: `en`, `pt-BR`", required=True),
            Param("label", "query", STRING, "What players show (default: the language)"),
        ],
        body_forms={"text/vtt": STRING, "application/x-subrip": STRING, "text/plain": STRING},
        ok={201: Answer("Stored (replacing that language's captions)", CAPTION)},
        errors={
            400: "`invalid_query` naming `language` or `label`",
            404: "`video_not_found`",
            413: "over `FRAMEFLOW_CAPTION_MAX_BYTES`",
            422: "`invalid_captions`: not SRT or WebVTT, naming the cue",
        },
    )
)
async def add_captions(request: web.Request) -> web.Response:
    user = current_user(request)
    video_id = path_uuid(request)
    language = parse_language(request.query.get("language"))
    label = parse_label(request.query.get("label"), language)
    data = await _read_limited(request, request.app[appkeys.SETTINGS].caption_max_bytes)
    caption = await request.app[appkeys.CAPTIONS].add(user.id, video_id, language, label, data)
    return web.json_response(_json(request, caption), status=201)


@described(
    RouteSpec(
        summary="The video's captions, each with a signed URL",
        tag="videos",
        ok={200: Answer("Its tracks, by language", page_of(CAPTION, cursor=False))},
        errors={404: "`video_not_found`"},
    )
)
async def list_captions(request: web.Request) -> web.Response:
    captions = await request.app[appkeys.CAPTIONS].list_owned(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response(
        {"items": [_json(request, c) for c in captions]}, headers={"Cache-Control": "no-store"}
    )


def _signed(request: web.Request) -> bool:
    return "signature" in request.query


@described(
    RouteSpec(
        summary="One language's captions as WebVTT",
        tag="videos",
        description="Bearer auth, or the signed URL of the list (for `<track src>`, any origin).",
        path_schemas=_PATHS,
        params=[Param("expires", "query", STRING), Param("signature", "query", STRING)],
        ok={200: Answer("WebVTT", STRING, "text/vtt")},
        errors={404: "`video_not_found`, `caption_not_found` or `invalid_signature`"},
    )
)
@signed_media(when=_signed)
async def get_captions(request: web.Request) -> web.Response:
    video_id = path_uuid(request)
    language = request.match_info["language"]
    captions = request.app[appkeys.CAPTIONS]
    if _signed(request):
        if not request.app[appkeys.SIGNER].verify_query(request.path, request.query):
            raise NotFound("No such captions, or the link has expired", code="invalid_signature")
        _, text = await captions.vtt(video_id, language)
    else:
        _, text = await captions.vtt(video_id, language, current_user(request).id)
    return vtt_response(text)


@described(
    RouteSpec(
        summary="Delete one language's captions",
        tag="videos",
        path_schemas=_PATHS,
        ok={204: Answer("Deleted")},
        errors={404: "`video_not_found` or `caption_not_found`"},
    )
)
async def delete_captions(request: web.Request) -> web.Response:
    await request.app[appkeys.CAPTIONS].delete(
        current_user(request).id, path_uuid(request), request.match_info["language"]
    )
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/videos/{id}/captions", add_captions)
    app.router.add_get("/api/v1/videos/{id}/captions", list_captions)
    path = "/api/v1/videos/{id}/captions/{language}"
    app.router.add_get(path, get_captions)  # HEAD too
    app.router.add_delete(path, delete_captions)
    app.router.add_route("OPTIONS", path, preflight_for(_signed))
