"""`/api/v1/videos`: list, show, edit, delete, and play back with ranges."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server import appkeys
from server.audit.model import Actor
from server.audit.origin import origin_of
from server.auth.middleware import current_user
from server.bodies import read_body
from server.errors import NotFound
from server.http import external_url, path_uuid, query_int
from server.jobs.serializers import thumbnail_links
from server.openapi.components import SERVE_PARAMS, SERVED
from server.openapi.spec import (
    CURSOR,
    LIMIT,
    STRING,
    TIME,
    Answer,
    RouteSpec,
    described,
    obj,
    page_of,
    ref,
)
from server.pagination import decode_cursor, page_body
from server.search.params import is_search, parse_search
from server.search.serializers import search_page_json
from server.serving.claims import claims_of, stored_file_of
from server.serving.cors import preflight_for, signed_media
from server.serving.serve import Offload, StoredFile, accel_expires, serve_stored_file
from server.serving.signing import playback_seconds
from server.videos.model import Video
from server.videos.schemas import MetadataBody
from server.videos.serializers import content_path, video_json

# A bearer request's account check younger than this is taken as it is.
RECHECK_SLACK_SECONDS = 0.25


@described(
    RouteSpec(
        summary="The caller's videos, newest first",
        tag="videos",
        params=[LIMIT, CURSOR],
        ok={200: Answer("A page", page_of(ref("Video")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_videos(request: web.Request) -> web.Response:
    user = current_user(request)
    limit = query_int(request, "limit", 20, lo=1, hi=100)
    if is_search(request.query):
        # `q` or a filter: full-text search with facets (server/search).
        query = parse_search(request.query, limit=limit)
        found = await request.app[appkeys.SEARCH].search(user.id, query)
        body = search_page_json(found)
    else:
        cursor = request.query.get("cursor")
        before = decode_cursor(cursor) if cursor else None
        # One extra row tells whether there is a next page.
        rows = await request.app[appkeys.VIDEOS].list_page(user.id, limit=limit + 1, before=before)
        body = page_body(rows, limit, video_json)
    await _add_thumbnails(request, user.id, body["items"])
    # The thumbnail URLs carry a signature: no shared cache should keep them.
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _add_thumbnails(
    request: web.Request, user_id: uuid.UUID, items: list[dict[str, Any]]
) -> None:
    """Each listed video's `thumbnail`: a signed URL of its newest thumbnail job's
    picture, or null (none made yet) — a grid of cards costs one query, not one each."""
    ids = [uuid.UUID(item["id"]) for item in items]
    jobs_by_video = await request.app[appkeys.JOBS].thumbnail_jobs(user_id, ids)
    links = thumbnail_links(
        request.app[appkeys.SIGNER],
        jobs_by_video,
        request.app[appkeys.SETTINGS].signed_url_ttl_seconds,
        lambda path: external_url(request, path),
    )
    for item in items:
        item["thumbnail"] = links.get(item["id"])


async def _owned_video(request: web.Request) -> Video:
    return await request.app[appkeys.VIDEOS].get(current_user(request).id, path_uuid(request))


@described(
    RouteSpec(
        summary="One video",
        tag="videos",
        ok={200: Answer("The video", ref("Video"))},
        errors={404: "`video_not_found`"},
    )
)
async def get_video(request: web.Request) -> web.Response:
    return web.json_response(video_json(await _owned_video(request)))


@described(
    RouteSpec(
        summary="Change a video's title, description or tags",
        tag="videos",
        body=MetadataBody,
        ok={200: Answer("The video", ref("Video"))},
        errors={
            400: "`invalid_json` or `invalid_field` naming the field",
            404: "`video_not_found`",
        },
    )
)
async def patch_video(request: web.Request) -> web.Response:
    """Title, description and tags; absent fields are left as they are."""
    video_id = path_uuid(request)
    patch = (await read_body(request, MetadataBody)).patch()
    video = await request.app[appkeys.VIDEOS].update_metadata(
        current_user(request).id, video_id, patch
    )
    return web.json_response(video_json(video))


@described(
    RouteSpec(
        summary="Delete a video, its jobs and outputs",
        tag="videos",
        ok={204: Answer("Deleted")},
        errors={404: "`video_not_found`"},
    )
)
async def delete_video(request: web.Request) -> web.Response:
    caller = current_user(request)
    await request.app[appkeys.VIDEOS].delete(
        caller.id, path_uuid(request), actor=Actor.of(caller), origin=origin_of(request)
    )
    return web.Response(status=204)


def _signed(request: web.Request) -> bool:
    return "signature" in request.query


@described(
    RouteSpec(
        summary="The video's bytes, with ranges (HEAD too)",
        tag="videos",
        description="Bearer auth, or the signed query of `content-url` (for `<video src>`).",
        params=SERVE_PARAMS,
        ok={
            **SERVED,
            307: Answer("To a short-lived presigned URL (S3, `FRAMEFLOW_S3_REDIRECT_SECONDS`)"),
        },
        errors={404: "`video_not_found` or `invalid_signature`", 416: "`range_not_satisfiable`"},
    )
)
@signed_media(when=_signed)
async def video_content(request: web.Request) -> web.StreamResponse:
    """Bearer auth, or a signed URL (for `<video src>`, which sends no headers)."""
    video_id = path_uuid(request)
    videos = request.app[appkeys.VIDEOS]
    stored: StoredFile | None = None
    if "signature" in request.query:
        if not request.app[appkeys.SIGNER].verify_query(request.path, request.query):
            raise NotFound("No such video, or the link has expired", code="invalid_signature")
        claims = request.query.get("claims")
        # A link made by `content-url` says what to serve; deletion still makes it a
        # 404 without a query: local files are opened before anything else is
        # decided, on S3 the first bytes are read before any header (and answers
        # that read none ask the store: `check_exists`); `deleted_here` covers
        # files whose deletion failed and awaits the sweep. Links from before
        # claims look the video up, and so does S3's redirect, which reads nothing.
        redirects = request.app[appkeys.SETTINGS].s3_redirect_seconds > 0
        if claims is not None and not redirects and not videos.deleted_here(video_id):
            stored = stored_file_of(claims)
        from_link = stored is not None
        if stored is None:
            stored = _stored(await videos.get_by_link(video_id))
    else:
        from_link = False
        stored = _stored(await videos.get_for_playback(current_user(request).id, video_id))
    download = request.query.get("download") in {"1", "true"}
    storage = request.app[appkeys.STORAGE]
    return await serve_stored_file(
        request,
        storage,
        stored,
        download=download,
        not_found=NotFound("No such video", code="video_not_found"),
        offload=await _offload(request, storage.sendfile_path(stored.key) is not None),
        check_exists=from_link,
    )


async def _offload(request: web.Request, local: bool) -> Offload | None:
    settings = request.app[appkeys.SETTINGS]
    if not settings.accel_redirect_prefix and not settings.s3_redirect_seconds:
        return None
    reuse = 0
    if local and settings.accel_redirect_prefix and settings.accel_cache_seconds > 0:
        now = time.time()
        reuse = accel_expires(await _authorized_until(request, now), now)
    return Offload(settings.accel_redirect_prefix, settings.s3_redirect_seconds, reuse)


async def _authorized_until(request: web.Request, now: float) -> float:
    """Until when this authorization may be reused by nginx (epoch seconds): a few
    seconds (`accel_cache_seconds`), never past the signed link's expiry, the
    access token's, or the end of the account check it rests on. API keys: not
    at all (each request asks the database, so revoking one applies at once)."""
    settings = request.app[appkeys.SETTINGS]
    until = now + settings.accel_cache_seconds
    if "signature" in request.query:
        return min(until, int(request.query["expires"]))  # verified above
    user = current_user(request)
    if user.token_expires_at is None:
        return now
    account_ttl = settings.account_check_cache_seconds
    # A check recent enough to cover the whole reuse, else a new one (one query
    # for the parallel requests of a player, once per reuse period).
    since = now - max(0.0, account_ttl - settings.accel_cache_seconds) - RECHECK_SLACK_SECONDS
    checked = await request.app[appkeys.AUTH].account_checked_since(user.id, since)
    return min(until, user.token_expires_at, checked + account_ttl)


def _stored(video: Video) -> StoredFile:
    return StoredFile(
        key=video.storage_key,
        size=video.size,
        etag_token=video.sha256,
        last_modified=video.created_at,
        content_type=video.content_type,
        filename=video.filename,
    )


@described(
    RouteSpec(
        summary="A signed, expiring URL of the content",
        tag="videos",
        ok={200: Answer("The URL", obj(["url", "expires_at"], url=STRING, expires_at=TIME))},
        errors={404: "`video_not_found`"},
    )
)
async def video_content_url(request: web.Request) -> web.Response:
    video = await _owned_video(request)
    path = content_path(video.id)
    # Long enough to play the whole video once, plus the TTL for pauses and a late start.
    ttl = playback_seconds(
        request.app[appkeys.SETTINGS].signed_url_ttl_seconds, video.metadata.get("duration")
    )
    # The link carries what serving needs: playing it costs no database query.
    query, expires_at = request.app[appkeys.SIGNER].signed_query(
        path, ttl, claims=claims_of(_stored(video))
    )
    url = external_url(request, path) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return web.json_response(
        {
            "url": url,
            "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(),
            # Lets a client time its renewal on its own clock, whatever its skew.
            "expires_in": ttl,
        },
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/videos", list_videos)
    app.router.add_get("/api/v1/videos/{id}", get_video)
    app.router.add_patch("/api/v1/videos/{id}", patch_video)
    app.router.add_delete("/api/v1/videos/{id}", delete_video)
    app.router.add_get("/api/v1/videos/{id}/content", video_content)  # HEAD too
    app.router.add_route("OPTIONS", "/api/v1/videos/{id}/content", preflight_for(_signed))
    app.router.add_get("/api/v1/videos/{id}/content-url", video_content_url)
