"""Share links: the owner's API and the public link `/s/{token}`.

Owner (bearer auth): `POST|GET /api/v1/videos/{id}/shares`,
`DELETE /api/v1/videos/{id}/shares/{share_id}`.

Visitor (no login): `GET /s/{token}` the player page, `GET /s/{token}/info`
and `POST /s/{token}/unlock` (the password) for what it shows, `POST
/s/{token}/renew` for fresh media links before the player's expire, and media
under `/s/{token}/m/{grant}/...` with ranges and CORS like other signed links.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.bodies import read_body
from server.captions.hls import MasterWithSubtitles, caption_file, subtitle_playlist
from server.captions.serving import playlist_response, stream_rewritten, vtt_response
from server.errors import NotFound
from server.http import external_url, path_uuid
from server.limits import policy
from server.openapi.components import SERVE_PARAMS, SERVED
from server.openapi.spec import STRING, TIME, UUID, Answer, RouteSpec, described, nullable, obj
from server.serving.cors import preflight_for, signed_media
from server.serving.serve import StoredFile, serve_stored_file
from server.shares.page import render_page
from server.shares.schemas import CreateShare, RenewBody, UnlockBody
from server.shares.serializers import locked_json, share_json, shared_view_json
from server.shares.service import HLS_MASTER, share_not_found
from server.static_files import share_page, share_page_template

_SHARE = obj(id=STRING, url=STRING, expires_at=nullable(TIME), views={"type": "integer"})
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@described(
    RouteSpec(
        summary="Create a share link (a public URL to the video, optional expiry and password)",
        tag="shares",
        body=CreateShare,
        ok={201: Answer("The share, with its public URL", _SHARE)},
        errors={
            400: "`invalid_json` or `invalid_field` naming the field",
            404: "`video_not_found`",
        },
    )
)
async def create_share(request: web.Request) -> web.Response:
    user = current_user(request)
    video_id = path_uuid(request)
    body = await read_body(request, CreateShare)
    share = await request.app[appkeys.SHARES].create(user.id, video_id, body.spec())
    return web.json_response(
        share_json(share, lambda path: external_url(request, path)), status=201
    )


@described(
    RouteSpec(
        summary="The video's share links",
        tag="shares",
        ok={200: Answer("Its links", obj(items={"type": "array", "items": _SHARE}))},
        errors={404: "`video_not_found`"},
    )
)
async def list_shares(request: web.Request) -> web.Response:
    shares = await request.app[appkeys.SHARES].list(current_user(request).id, path_uuid(request))
    items = [share_json(s, lambda path: external_url(request, path)) for s in shares]
    return web.json_response({"items": items})


@described(
    RouteSpec(
        summary="Revoke a share link (at once)",
        tag="shares",
        path_schemas={"id": UUID, "share_id": UUID},
        ok={204: Answer("Revoked")},
        errors={404: "`video_not_found` or `share_not_found`"},
    )
)
async def revoke_share(request: web.Request) -> web.Response:
    await request.app[appkeys.SHARES].revoke(
        current_user(request).id, path_uuid(request), path_uuid(request, "share_id")
    )
    return web.Response(status=204)


# One page for unknown, revoked, expired and deleted: it tells nothing apart.
_GONE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="robots" content="noindex"><title>Link not found</title></head>
<body><h1>This link does not exist, has expired or was revoked.</h1></body></html>
"""


@described(
    RouteSpec(
        summary="The public player page of a share link",
        tag="shares",
        path_schemas={"token": STRING},
        ok={200: Answer("HTML", STRING, "text/html")},
        errors={404: "An unknown, revoked or expired link (an HTML page)"},
    )
)
async def player_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, embed=False)


@described(
    RouteSpec(
        summary="The share link's player alone, for an <iframe> on another site",
        tag="shares",
        path_schemas={"token": STRING},
        ok={200: Answer("HTML", STRING, "text/html")},
        errors={404: "An unknown, revoked or expired link (the same HTML page)"},
    )
)
async def embed_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, embed=True)


async def _page(request: web.Request, *, embed: bool) -> web.StreamResponse:
    try:
        card = await request.app[appkeys.SHARES].card(request.match_info["token"])
    except NotFound:
        return web.Response(
            status=404, text=_GONE_PAGE, content_type="text/html", headers=_NO_STORE
        )
    html = render_page(
        share_page_template(), card, lambda path: external_url(request, path), embed=embed
    )
    return share_page(request, html)


@described(
    RouteSpec(
        summary="What a share link shows (or that it needs a password)",
        tag="shares",
        path_schemas={"token": STRING},
        ok={200: Answer("The shared view, or `locked`", obj())},
        errors={404: "`share_not_found`"},
    )
)
async def share_info(request: web.Request) -> web.Response:
    view = await request.app[appkeys.SHARES].open(request.match_info["token"], None)
    body = locked_json() if view is None else shared_view_json(view)
    return web.json_response(body, headers=_NO_STORE)


@described(
    RouteSpec(
        summary="Open a password-protected share link",
        tag="shares",
        path_schemas={"token": STRING},
        body=UnlockBody,
        ok={200: Answer("The shared view", obj())},
        errors={
            400: "`invalid_json` or `invalid_field`",
            403: "`wrong_password`",
            404: "`share_not_found`",
            429: "`rate_limited`",
        },
    )
)
async def unlock_share(request: web.Request) -> web.Response:
    await policy.limit_share_unlock(request, request.match_info["token"])
    body = await read_body(request, UnlockBody)
    view = await request.app[appkeys.SHARES].open(request.match_info["token"], body.password)
    assert view is not None  # a password was given
    return web.json_response(shared_view_json(view), headers=_NO_STORE)


@described(
    RouteSpec(
        summary="Fresh media links for a share link's player, before its links expire",
        description="Checks the link as every request does (revoked, expired or unknown: "
        "the one 404) and counts no view. A link with a password needs the `grant` of the "
        "player's current links (unexpired); without one, or with a wrong or expired one, "
        "the answer is `password_required` as from `/info`, and the password is asked again.",
        tag="shares",
        path_schemas={"token": STRING},
        body=RenewBody,
        ok={200: Answer("The shared view with new media links, or `locked`", obj())},
        errors={400: "`invalid_json` or `invalid_field`", 404: "`share_not_found`"},
    )
)
async def renew_links(request: web.Request) -> web.Response:
    body = await read_body(request, RenewBody)
    view = await request.app[appkeys.SHARES].renew(request.match_info["token"], body.grant)
    payload = locked_json() if view is None else shared_view_json(view)
    return web.json_response(payload, headers=_NO_STORE)


async def _serve(
    request: web.Request, stored: StoredFile, *, download: bool = False
) -> web.StreamResponse:
    # no-cache: a browser revalidates each time (a cheap 304), and every
    # revalidation checks the share, so a revoke is not outlived by a cache.
    return await serve_stored_file(
        request, request.app[appkeys.STORAGE], stored, download=download, cache_control="no-cache"
    )


@described(
    RouteSpec(
        summary="The shared video's bytes, with ranges",
        tag="shares",
        params=SERVE_PARAMS,
        path_schemas={"token": STRING, "grant": STRING},
        ok=SERVED,
        errors={404: "`share_not_found`", 416: "`range_not_satisfiable`"},
    )
)
@signed_media()
async def shared_video(request: web.Request) -> web.StreamResponse:
    download = request.query.get("download") in {"1", "true"}
    stored = await request.app[appkeys.SHARES].source(
        request.match_info["token"], request.match_info["grant"], download=download
    )
    return await _serve(request, stored, download=download)


@described(
    RouteSpec(
        summary="The shared video's thumbnail",
        tag="shares",
        params=SERVE_PARAMS,
        path_schemas={"token": STRING, "grant": STRING},
        ok=SERVED,
        errors={404: "`share_not_found`", 416: "`range_not_satisfiable`"},
    )
)
@signed_media()
async def shared_thumbnail(request: web.Request) -> web.StreamResponse:
    stored = await request.app[appkeys.SHARES].thumbnail(
        request.match_info["token"], request.match_info["grant"]
    )
    return await _serve(request, stored)


@described(
    RouteSpec(
        summary="A file of the shared HLS rendition ladder",
        tag="shares",
        params=SERVE_PARAMS,
        path_schemas={"token": STRING, "grant": STRING, "name": STRING},
        ok=SERVED,
        errors={404: "`share_not_found`", 416: "`range_not_satisfiable`"},
    )
)
@signed_media()
async def shared_hls(request: web.Request) -> web.StreamResponse:
    token, grant, name = (request.match_info[k] for k in ("token", "grant", "name"))
    shares = request.app[appkeys.SHARES]
    if (caption := caption_file(name)) is not None:
        language, ext = caption
        if ext == "vtt":
            return vtt_response(await shares.caption_vtt(token, grant, language))
        video, captions = await shares.hls_captions(token, grant)
        if all(c.language != language for c in captions):
            raise share_not_found()
        return playlist_response(subtitle_playlist(language, video.metadata.get("duration")))
    stored = await shares.hls_file(token, grant, name)
    if name == HLS_MASTER:
        _, captions = await shares.hls_captions(token, grant)
        if captions:
            return await stream_rewritten(
                request,
                request.app[appkeys.STORAGE],
                stored.key,
                stored.content_type,
                MasterWithSubtitles(captions).line,
            )
    return await _serve(request, stored)


@described(
    RouteSpec(
        summary="A caption track of the shared video, as WebVTT",
        tag="shares",
        path_schemas={"token": STRING, "grant": STRING, "language": STRING},
        ok={200: Answer("WebVTT", STRING, "text/vtt")},
        errors={404: "`share_not_found`"},
    )
)
@signed_media()
async def shared_captions(request: web.Request) -> web.StreamResponse:
    text = await request.app[appkeys.SHARES].caption_vtt(
        request.match_info["token"], request.match_info["grant"], request.match_info["language"]
    )
    return vtt_response(text)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/videos/{id}/shares", create_share)
    app.router.add_get("/api/v1/videos/{id}/shares", list_shares)
    app.router.add_delete("/api/v1/videos/{id}/shares/{share_id}", revoke_share)
    app.router.add_get("/s/{token}", player_page)
    app.router.add_get("/s/{token}/embed", embed_page)
    app.router.add_get("/s/{token}/info", share_info)
    app.router.add_post("/s/{token}/unlock", unlock_share)
    app.router.add_post("/s/{token}/renew", renew_links)
    media = "/s/{token}/m/{grant}"
    for path, handler in (
        (f"{media}/video", shared_video),
        (f"{media}/thumbnail", shared_thumbnail),
        (media + "/hls/{name:.+}", shared_hls),
        (media + "/captions/{language}", shared_captions),
    ):
        app.router.add_get(path, handler)  # HEAD too
        app.router.add_route("OPTIONS", path, preflight_for())
