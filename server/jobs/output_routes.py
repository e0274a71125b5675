"""Serve job outputs: with a bearer token, or under a signed path token.

`/api/v1/jobs/{id}/outputs/{name}` is for API clients (Authorization
header). `/api/v1/jobs/{id}/t/{token}/{name}` is what signed URLs point at:
the token sits in the path so that relative URIs inside HLS playlists keep
it, and players need no headers. Both end in the same range-capable
delivery as sources.
"""

from __future__ import annotations

import hashlib
import uuid

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.db import jobs as jobs_db
from server.errors import NotFound
from server.http import path_uuid
from server.jobs.links import verify_token
from server.jobs.model import SUCCEEDED, Job, OutputFile
from server.serving.cors import preflight_for, signed_media
from server.serving.serve import StoredFile, serve_stored_file


async def _output(request: web.Request, job: Job | None) -> tuple[Job, OutputFile]:
    name = request.match_info["name"]
    if job is None or job.status != SUCCEEDED:
        raise NotFound("No such job output", code="output_not_found")
    async with request.app[appkeys.POOL].acquire() as conn:
        output = await jobs_db.get_output(conn, job.id, name)
    if output is None:
        raise NotFound("No such job output", code="output_not_found")
    return job, output


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


async def _job(request: web.Request, job_id: uuid.UUID, user_id: uuid.UUID | None) -> Job | None:
    async with request.app[appkeys.POOL].acquire() as conn:
        return await jobs_db.get_job(conn, job_id, user_id)


async def output_with_bearer(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    job_id = path_uuid(request)
    job, output = await _output(request, await _job(request, job_id, user.id))
    return await _serve(request, job, output)


@signed_media()
async def output_with_token(request: web.Request) -> web.StreamResponse:
    job_id = path_uuid(request)
    if not verify_token(request.app[appkeys.SIGNER], job_id, request.match_info["token"]):
        raise NotFound("No such job output, or the link has expired", code="invalid_signature")
    job, output = await _output(request, await _job(request, job_id, None))
    return await _serve(request, job, output)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/jobs/{id}/outputs/{name:.+}", output_with_bearer)
    # Token URLs carry their own authority: players on any origin may fetch them.
    app.router.add_get("/api/v1/jobs/{id}/t/{token}/{name:.+}", output_with_token)
    app.router.add_route("OPTIONS", "/api/v1/jobs/{id}/t/{token}/{name:.+}", preflight_for())
