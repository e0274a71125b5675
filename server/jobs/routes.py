"""`/api/v1/.../jobs`: queue, list, show, cancel, and the processing history."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.bodies import read_body
from server.errors import BadRequest
from server.http import external_url, path_uuid, query_int
from server.jobs.model import STATUSES, Job, OutputFile
from server.jobs.schemas import CreateJob
from server.jobs.serializers import (
    event_json,
    job_detail_json,
    job_json,
    output_link_maker,
)
from server.limits import policy
from server.openapi.spec import (
    ANY_OBJECT,
    CURSOR,
    LIMIT,
    UUID,
    Answer,
    Param,
    RouteSpec,
    described,
    page_of,
    ref,
)
from server.pagination import decode_cursor, page_body


def _link_maker(request: web.Request, job: Job) -> Callable[[str], str]:
    return output_link_maker(
        request.app[appkeys.SIGNER],
        job.id,
        request.app[appkeys.SETTINGS].signed_url_ttl_seconds,
        lambda path: external_url(request, path),
    )


def _detail(
    request: web.Request, job: Job, outputs: Sequence[OutputFile], status: int = 200
) -> web.Response:
    return web.json_response(
        job_detail_json(job, outputs, _link_maker(request, job)),
        status=status,
        # The output URLs carry a signature: no shared cache should keep them.
        headers={"Cache-Control": "no-store"},
    )


@described(
    RouteSpec(
        summary="Queue a job on a video",
        tag="jobs",
        dynamic_body="job",
        ok={202: Answer("Queued", ref("JobDetail"))},
        errors={
            400: "`invalid_json`, `invalid_field` or `invalid_params`, naming the field",
            404: "`video_not_found`",
            413: "`quota_exceeded`, or a body over 64 KiB",
            429: "`rate_limited`",
        },
    )
)
async def create_job(request: web.Request) -> web.Response:
    user = current_user(request)
    video_id = path_uuid(request)
    await policy.limit_job(request, user)
    body = await read_body(request, CreateJob)
    job = await request.app[appkeys.JOBS].create_job(
        user.id, video_id, body.operation, body.params, body.priority
    )
    return _detail(request, job, [], status=202)


@described(
    RouteSpec(
        summary="The caller's jobs, newest first",
        tag="jobs",
        params=[
            LIMIT,
            CURSOR,
            Param("status", "query", {"enum": list(STATUSES)}),
            Param("video_id", "query", UUID),
        ],
        ok={200: Answer("A page", page_of(ref("Job")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_jobs(request: web.Request) -> web.Response:
    user = current_user(request)
    limit = query_int(request, "limit", 20, lo=1, hi=100)
    raw_status = request.query.get("status") or None
    status = next((s for s in STATUSES if s == raw_status), None)
    if raw_status is not None and status is None:
        raise BadRequest(
            f"'status' must be one of {', '.join(STATUSES)}", code="invalid_query", field="status"
        )
    video_id = None
    if raw_video := request.query.get("video_id"):
        try:
            video_id = uuid.UUID(raw_video)
        except ValueError:
            raise BadRequest(
                "'video_id' must be a UUID", code="invalid_query", field="video_id"
            ) from None
    cursor = request.query.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    # One extra row tells whether there is a next page.
    rows = await request.app[appkeys.JOBS].list_jobs(
        user.id,
        status=status,
        video_id=video_id,
        limit=limit + 1,
        before=before,
    )
    return web.json_response(page_body(rows, limit, job_json))


@described(
    RouteSpec(
        summary="One job with its outputs",
        tag="jobs",
        ok={200: Answer("The job", ref("JobDetail"))},
        errors={404: "`job_not_found`"},
    )
)
async def get_job(request: web.Request) -> web.Response:
    job, outputs = await request.app[appkeys.JOBS].get_job(
        current_user(request).id, path_uuid(request)
    )
    return _detail(request, job, outputs)


@described(
    RouteSpec(
        summary="Cancel a queued or running job",
        tag="jobs",
        ok={202: Answer("Cancel requested", ref("JobDetail"))},
        errors={404: "`job_not_found`", 409: "`job_finished`"},
    )
)
async def cancel_job(request: web.Request) -> web.Response:
    job = await request.app[appkeys.JOBS].cancel_job(current_user(request).id, path_uuid(request))
    return _detail(request, job, [], status=202)


@described(
    RouteSpec(
        summary="The job's attempts",
        tag="jobs",
        ok={200: Answer("Attempts", page_of(ANY_OBJECT, cursor=False))},
        errors={404: "`job_not_found`"},
    )
)
async def job_events(request: web.Request) -> web.Response:
    events = await request.app[appkeys.JOBS].job_events(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response({"items": [event_json(e) for e in events]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/videos/{id}/jobs", create_job, name="jobs.create")
    app.router.add_get("/api/v1/jobs", list_jobs, name="jobs.list")
    app.router.add_get("/api/v1/jobs/{id}", get_job, name="jobs.show")
    app.router.add_post("/api/v1/jobs/{id}/cancel", cancel_job, name="jobs.cancel")
    app.router.add_get("/api/v1/jobs/{id}/events", job_events, name="jobs.events")
