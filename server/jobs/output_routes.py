"""Serve job outputs: with a bearer token, or under a signed path token.

`/api/v1/jobs/{id}/outputs/{name}` is for API clients (Authorization
header). `/api/v1/jobs/{id}/t/{token}/{name}` is what signed URLs point at:
the token sits in the path so that relative URIs inside HLS playlists keep
it, and players need no headers. Both end in the same range-capable
delivery as sources, except HLS playlists under a token: those are rewritten
as they are served so that their URIs carry a fresh playback token
(`playlists.py`), and playback outlives the link it started from.
"""

from __future__ import annotations

import hashlib
import uuid
from contextlib import aclosing

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.captions.hls import MasterWithSubtitles, caption_file, subtitle_playlist
from server.captions.serving import playlist_response, vtt_response
from server.errors import NotFound
from server.http import path_uuid
from server.jobs.links import OutputToken, read_token, renewed_token
from server.jobs.model import Job, OutputFile
from server.jobs.playlists import (
    UriRewriter,
    directory_of,
    is_playlist,
    rewrite_lines,
    up_to_token,
)
from server.openapi.components import SERVE_PARAMS, SERVED
from server.openapi.spec import RouteSpec, described
from server.serving.cors import preflight_for, signed_media
from server.serving.disposition import content_disposition
from server.serving.serve import StoredFile, serve_stored_file
from server.serving.signing import playback_seconds


async def _serve(request: web.Request, job: Job, output: OutputFile) -> web.StreamResponse:
    finished = job.finished_at or job.created_at
    # Outputs of a finished job never change; key, size and finish time pin them.
    tag = hashlib.sha256(f"{output.storage_key}:{output.size}:{finished.isoformat()}".encode())
    stored = StoredFile(
        key=output.storage_key,
        size=output.size,
        etag_token=tag.hexdigest()[:40],
        last_modified=finished,
        content_type=output.content_type,
        filename=output.name.rsplit("/", 1)[-1],
    )
    download = request.query.get("download") in {"1", "true"}
    return await serve_stored_file(request, request.app[appkeys.STORAGE], stored, download=download)


@described(
    RouteSpec(
        summary="An output of a finished job, with ranges",
        tag="jobs",
        params=SERVE_PARAMS,
        path_schemas={"name": {"type": "string", "minLength": 1}},
        ok=SERVED,
        errors={404: "`job_not_found` or `output_not_found`", 416: "`range_not_satisfiable`"},
    )
)
async def output_with_bearer(request: web.Request) -> web.StreamResponse:
    job, output = await request.app[appkeys.JOBS].finished_output(
        path_uuid(request), current_user(request).id, request.match_info["name"]
    )
    return await _serve(request, job, output)


@described(
    RouteSpec(
        summary="An output by its signed path token (HLS players)",
        tag="jobs",
        params=SERVE_PARAMS,
        path_schemas={
            "name": {"type": "string", "minLength": 1},
            "token": {"type": "string", "minLength": 1},
        },
        ok=SERVED,
        errors={404: "`invalid_signature` or `output_not_found`", 416: "`range_not_satisfiable`"},
    )
)
@signed_media()
async def output_with_token(request: web.Request) -> web.StreamResponse:
    job_id = path_uuid(request)
    token = read_token(request.app[appkeys.SIGNER], job_id, request.match_info["token"])
    if token is None:
        raise NotFound("No such job output, or the link has expired", code="invalid_signature")
    name = request.match_info["name"]
    caption = caption_file(name.removeprefix(HLS_DIR)) if name.startswith(HLS_DIR) else None
    if caption is not None:
        return await _serve_caption(request, job_id, *caption)
    job, output = await request.app[appkeys.JOBS].finished_output(job_id, None, name)
    if is_playlist(output.name, output.content_type):
        return await _serve_playlist(request, job, output, token)
    return await _serve(request, job, output)


async def _serve_caption(
    request: web.Request, job_id: uuid.UUID, language: str, ext: str
) -> web.StreamResponse:
    """`hls/captions/{language}.m3u8|.vtt` of a finished job: its video's captions, as the
    master playlist's `SUBTITLES` group names them."""
    jobs, captions = request.app[appkeys.JOBS], request.app[appkeys.CAPTIONS]
    job = await jobs.finished_job(job_id)
    try:
        if job.video_id is None:  # a generation's job: no source video, no captions
            raise NotFound()
        _, text = await captions.vtt(job.video_id, language)
    except NotFound:
        raise NotFound("No such job output", code="output_not_found") from None
    if ext == "vtt":
        return vtt_response(text)
    return playlist_response(subtitle_playlist(language, await jobs.source_duration(job)))


async def _serve_playlist(
    request: web.Request, job: Job, output: OutputFile, token: OutputToken
) -> web.StreamResponse:
    """The playlist with its URIs under a fresh playback token, streamed line by line.

    Its bytes differ on each fetch, so it has no ETag or length, ignores
    Range, and is not to be cached.
    """
    app = request.app
    duration = await app[appkeys.JOBS].source_duration(job)
    lifetime = playback_seconds(app[appkeys.SETTINGS].signed_url_ttl_seconds, duration)
    rewriter = UriRewriter(
        base_dir=directory_of(output.name),
        up=up_to_token(_segments_after_token(request)),
        token=renewed_token(app[appkeys.SIGNER], job.id, token, lifetime),
    )
    rewrite = rewriter.line
    if output.name == HLS_DIR + "master.m3u8":
        # The video's captions as a SUBTITLES group; their URIs get the fresh token too.
        tracks = [] if job.video_id is None else await app[appkeys.CAPTIONS].of_video(job.video_id)
        subtitles = MasterWithSubtitles(tracks)

        def rewrite(line: str) -> str:
            return rewriter.line(subtitles.line(line))

    download = request.query.get("download") in {"1", "true"}
    resp = web.StreamResponse(
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": content_disposition(
                output.name.rsplit("/", 1)[-1], inline=not download
            ),
            "X-Content-Type-Options": "nosniff",
        }
    )
    resp.content_type = output.content_type
    await resp.prepare(request)
    if request.method != "HEAD" and output.size > 0:
        async with (
            aclosing(app[appkeys.STORAGE].read(output.storage_key)) as chunks,
            aclosing(rewrite_lines(chunks, rewrite)) as lines,
        ):
            async for part in lines:
                await resp.write(part)
    await resp.write_eof()
    return resp


HLS_DIR = "hls/"


def _segments_after_token(request: web.Request) -> int:
    """Path segments after the token as the client sent them (what its URIs resolve from)."""
    # "", "api", "v1", "jobs", "{id}", "t", "{token}", then the name's segments.
    return len(request.raw_path.split("?", 1)[0].split("/")) - 7


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/jobs/{id}/outputs/{name:.+}", output_with_bearer)
    # Token URLs carry their own authority: players on any origin may fetch them.
    app.router.add_get("/api/v1/jobs/{id}/t/{token}/{name:.+}", output_with_token)
    app.router.add_route("OPTIONS", "/api/v1/jobs/{id}/t/{token}/{name:.+}", preflight_for())
