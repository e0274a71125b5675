"""Job use cases behind the API: create, cancel, read. Handlers stay thin and call these."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from config.settings import Settings
from server import appkeys
from server.db import jobs as jobs_db
from server.db import videos as videos_db
from server.db.videos import Video
from server.errors import BadRequest, NotFound, PayloadTooLarge
from server.jobs import state
from server.jobs.model import CANCELED, Job, JobEvent, OutputFile
from server.jobs.operations.estimates import estimated_output_bytes
from server.jobs.operations.protocol import Operation
from server.logs import get_logger

if TYPE_CHECKING:
    from server.jobs.runner import Publish

log = get_logger("frameflow.jobs")

MAX_PRIORITY = 100


@dataclass(frozen=True)
class JobDeps:
    """What the job use cases need, whether or not this instance runs workers."""

    pool: asyncpg.Pool
    settings: Settings
    operations: Mapping[str, Operation]
    publish: Publish

    @classmethod
    def from_app(cls, app: web.Application) -> JobDeps:
        runner = app[appkeys.RUNNER]
        return cls(app[appkeys.POOL], app[appkeys.SETTINGS], runner.operations, runner.publish)


def resolve_operation(deps: JobDeps, name: object, video: Video | None = None) -> Operation:
    """The operation called `name`, if it applies to `video`; else a 400 on `operation`."""
    operation = deps.operations.get(name) if isinstance(name, str) else None
    if operation is None:
        known = ", ".join(sorted(deps.operations))
        raise BadRequest(
            f"Unknown operation; expected one of: {known}",
            code="unknown_operation",
            field="operation",
        )
    if video is not None and video.kind not in operation.kinds:
        raise BadRequest(
            f"'{operation.name}' does not apply to {video.kind} uploads",
            code="operation_not_applicable",
            field="operation",
        )
    return operation


MAX_PROCESS = 5


def parse_process(deps: JobDeps, raw: str | None) -> list[Operation]:
    """`?process=frames,thumbnail` as operations (kinds checked later); 400 on `process`."""
    if not raw:
        return []
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if len(names) > MAX_PROCESS:
        raise BadRequest(
            f"At most {MAX_PROCESS} operations per upload", code="invalid_field", field="process"
        )
    unknown = [n for n in names if n not in deps.operations]
    if unknown:
        known = ", ".join(sorted(deps.operations))
        raise BadRequest(
            f"Unknown operation {unknown[0]!r} in 'process'; expected some of: {known}",
            code="unknown_operation",
            field="process",
        )
    return [deps.operations[n] for n in names]


def check_process_kind(operations: Sequence[Operation], kind: str) -> None:
    """Before an upload is stored: every requested operation must apply to its kind."""
    for op in operations:
        if kind not in op.kinds:
            raise BadRequest(
                f"'{op.name}' does not apply to {kind} uploads",
                code="operation_not_applicable",
                field="process",
            )


def plan_jobs(
    deps: JobDeps, operations: Sequence[Operation], video: Video
) -> list[tuple[Operation, dict[str, Any]]]:
    """Default params of each operation for `video`, validated before anything is kept."""
    return [(op, op.parse_params({}, video, deps.settings)) for op in operations]


async def insert_planned_jobs(
    conn: asyncpg.Connection,
    deps: JobDeps,
    video: Video,
    planned: Sequence[tuple[Operation, dict[str, Any]]],
) -> list[Job]:
    """Queue planned jobs inside the caller's transaction (with the video's own insert)."""
    jobs = [
        await jobs_db.insert_job(
            conn,
            user_id=video.user_id,
            video_id=video.id,
            operation=op.name,
            params=params,
            priority=0,
            max_attempts=deps.settings.job_max_attempts,
        )
        for op, params in planned
    ]
    if jobs:
        await jobs_db.notify_new_job(conn)  # delivered at commit
    return jobs


async def create_job(
    deps: JobDeps,
    user_id: uuid.UUID,
    video_id: uuid.UUID,
    operation: object,
    raw_params: object,
    priority: int = 0,
) -> Job:
    """Validate and queue one job; 404 unless the video is the user's, 400 naming the field."""
    async with deps.pool.acquire() as conn:
        video = await videos_db.get_video(conn, video_id, user_id)
    if video is None:
        raise NotFound("No such video", code="video_not_found")
    op = resolve_operation(deps, operation, video)
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, Mapping):
        raise BadRequest("'params' must be an object", code="invalid_params", field="params")
    params = op.parse_params(raw_params, video, deps.settings)
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise BadRequest("'priority' is out of range", code="invalid_field", field="priority")
    await check_output_quota(deps, user_id, op, params, video)
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            job = await jobs_db.insert_job(
                conn,
                user_id=user_id,
                video_id=video.id,
                operation=op.name,
                params=params,
                priority=priority,
                max_attempts=deps.settings.job_max_attempts,
            )
            await jobs_db.notify_new_job(conn)  # delivered at commit
    except asyncpg.ForeignKeyViolationError:
        # The video was deleted in between.
        raise NotFound("No such video", code="video_not_found") from None
    log.info("job_queued", job_id=str(job.id), op=job.operation, video_id=str(video.id))
    await deps.publish("job.queued", job)
    return job


async def check_output_quota(
    deps: JobDeps,
    user_id: uuid.UUID,
    op: Operation,
    params: Mapping[str, Any],
    video: Video,
    *,
    also_needed: int = 0,
) -> None:
    """413 `quota_exceeded` when the job's estimated outputs cannot fit in what is left.

    Only a refusal up front: the outputs are counted for real when the job
    succeeds, so an estimate that is off never makes `used_bytes` wrong.
    `also_needed` is space about to be taken in the same request (an upload's
    own bytes, when jobs are queued with `?process=`).
    """
    await check_planned_quota(deps, user_id, [(op, params)], video, also_needed=also_needed)


async def check_planned_quota(
    deps: JobDeps,
    user_id: uuid.UUID,
    planned: Sequence[tuple[Operation, Mapping[str, Any]]],
    video: Video,
    *,
    also_needed: int = 0,
) -> None:
    estimates = [estimated_output_bytes(op, params, video) for op, params in planned]
    estimate = sum(e for e in estimates if e is not None)
    if not estimate:
        return
    async with deps.pool.acquire() as conn:
        headroom = max(await videos_db.quota_headroom(conn, user_id) - also_needed, 0)
    if estimate > headroom:
        raise PayloadTooLarge(
            f"The outputs would take about {human_bytes(estimate)}, but only "
            f"{human_bytes(headroom)} of your storage quota is left; delete some videos "
            "or ask for fewer or smaller outputs",
            code="quota_exceeded",
            estimated_bytes=estimate,
            remaining=headroom,
        )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


async def cancel_job(deps: JobDeps, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Queued: canceled now. Running: its worker is told and stops it within seconds
    (the job returned is still running, with `cancel_requested`). Finished: 409."""
    async with deps.pool.acquire() as conn:
        job = await state.request_cancel(conn, job_id, user_id)
    if job.status == CANCELED:
        await deps.publish("job.canceled", job)
    log.info("job_cancel_requested", job_id=str(job.id), status=job.status)
    return job


async def get_job(
    deps: JobDeps, user_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[Job, list[OutputFile]]:
    async with deps.pool.acquire() as conn:
        job = await jobs_db.get_job(conn, job_id, user_id)
        if job is None:
            raise NotFound("No such job", code="job_not_found")
        return job, await jobs_db.list_outputs(conn, job.id)


async def list_jobs(
    deps: JobDeps,
    user_id: uuid.UUID,
    *,
    status: str | None,
    video_id: uuid.UUID | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[Job]:
    async with deps.pool.acquire() as conn:
        return await jobs_db.list_jobs(
            conn, user_id, status=status, video_id=video_id, limit=limit, before=before
        )


async def job_events(deps: JobDeps, user_id: uuid.UUID, job_id: uuid.UUID) -> list[JobEvent]:
    async with deps.pool.acquire() as conn:
        if await jobs_db.get_job(conn, job_id, user_id) is None:
            raise NotFound("No such job", code="job_not_found")
        return await jobs_db.list_events(conn, job_id)
