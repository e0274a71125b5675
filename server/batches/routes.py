"""`POST /api/v1/jobs/batch` (all jobs or none), `GET /api/v1/batches/{id}` (counts by
status) and `POST /api/v1/batches/{id}/cancel` (every open job)."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.batches.schemas import CreateBatch
from server.batches.serializers import batch_json
from server.bodies import read_body
from server.http import path_uuid
from server.jobs.model import STATUSES
from server.limits import policy
from server.openapi.spec import (
    BOOLEAN,
    INTEGER,
    STRING,
    TIME,
    UUID,
    Answer,
    RouteSpec,
    described,
    nullable,
    obj,
)

BATCH = obj(
    ["id", "counts", "done"],
    id=UUID,
    created_at=TIME,
    operations={"type": "array", "items": {"type": "object"}},
    preset=nullable(STRING),
    job_count=INTEGER,
    counts=obj(list(STATUSES), **dict.fromkeys(STATUSES, INTEGER)),
    done=BOOLEAN,
)
CREATED_BATCH = {"allOf": [BATCH, obj(["job_ids"], job_ids={"type": "array", "items": UUID})]}


@described(
    RouteSpec(
        summary="Queue operations on many videos at once: every job, or none",
        tag="jobs",
        body=CreateBatch,
        ok={202: Answer("Queued, with the batch id to follow it", CREATED_BATCH)},
        errors={
            400: "`invalid_field`, `unknown_operation`, `invalid_params`, "
            "`operation_not_applicable`, `batch_too_large` or `no_videos`, naming the field",
            404: "`video_not_found` (naming every missing id) or `preset_not_found`",
            413: "`quota_exceeded` (the whole batch's estimate), or a body over 1 MiB",
            429: "`rate_limited`",
        },
    )
)
async def create_batch(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_job(request, user)
    body = await read_body(request, CreateBatch)
    batch, job_ids = await request.app[appkeys.BATCHES].create(user.id, body)
    return web.json_response(batch_json(batch, job_ids), status=202)


@described(
    RouteSpec(
        summary="A batch, with its jobs counted by status",
        tag="jobs",
        ok={200: Answer("The batch", BATCH)},
        errors={404: "`batch_not_found`"},
    )
)
async def get_batch(request: web.Request) -> web.Response:
    batch = await request.app[appkeys.BATCHES].get(current_user(request).id, path_uuid(request))
    return web.json_response(batch_json(batch))


@described(
    RouteSpec(
        summary="Cancel every queued or running job of a batch",
        tag="jobs",
        ok={202: Answer("Cancel requested (running jobs stop within seconds)", BATCH)},
        errors={404: "`batch_not_found`"},
    )
)
async def cancel_batch(request: web.Request) -> web.Response:
    batch = await request.app[appkeys.BATCHES].cancel(current_user(request).id, path_uuid(request))
    return web.json_response(batch_json(batch), status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/jobs/batch", create_batch, name="batches.create")
    app.router.add_get("/api/v1/batches/{id}", get_batch, name="batches.show")
    app.router.add_post("/api/v1/batches/{id}/cancel", cancel_batch, name="batches.cancel")
