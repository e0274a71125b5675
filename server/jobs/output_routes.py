"""Serve job outputs: with a bearer token, or under a signed path token.

`/api/v1/jobs/{id}/outputs/{name}` is for API clients (Authorization
header). `/api/v1/jobs/{id}/t/{token}/{name}` is what signed URLs point at:
the token sits in the path so that relative URIs inside HLS playlists keep
it, and players need no headers. Both end in the same range-capable
delivery as sources.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import NotFound
from server.http import path_uuid
from server.jobs.links import verify_token
from server.jobs.model import Job, OutputFile
from server.openapi.components import SERVE_PARAMS, SERVED
from server.openapi.spec import RouteSpec, described
from server.serving.serve import StoredFile, serve_stored_file


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
async def output_with_token(request: web.Request) -> web.StreamResponse:
    job_id = path_uuid(request)
    if not verify_token(request.app[appkeys.SIGNER], job_id, request.match_info["token"]):
        raise NotFound("No such job output, or the link has expired", code="invalid_signature")
    job, output = await request.app[appkeys.JOBS].finished_output(
        job_id, None, request.match_info["name"]
    )
    return await _serve(request, job, output)


async def allow_any_origin(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: token URLs carry their own authority, so players on
    any origin (hls.js in another site, a CDN-hosted page) may fetch them."""
    route = request.match_info.route.resource
    if route is not None and route.canonical == TOKEN_ROUTE:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "Content-Range, Content-Length, ETag"


TOKEN_ROUTE = "/api/v1/jobs/{id}/t/{token}/{name}"  # noqa: S105 - a route, not a secret


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/jobs/{id}/outputs/{name:.+}", output_with_bearer)
    app.router.add_get("/api/v1/jobs/{id}/t/{token}/{name:.+}", output_with_token)
    app.on_response_prepare.append(allow_any_origin)
