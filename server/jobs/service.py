"""`JobService`: the job use cases behind the API — queue, cancel, read.

It needs no job runner: it queues rows and announces them, and whichever
instance runs workers claims them (`FRAMEFLOW_WORKERS_ENABLED=false` builds
no runner at all). Queuing holds the job's estimated outputs in the quota
ledger in the same transaction as the insert, so quick job creation cannot
overshoot the quota; the transaction that finishes the job settles it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from config.settings import Settings
from server.db import jobs as jobs_db
from server.db import videos as videos_db
from server.errors import BadRequest, NotFound
from server.jobs import state
from server.jobs.model import CANCELED, QUEUED, RUNNING, Job, JobEvent, JobStatus, OutputFile
from server.jobs.operations.estimates import estimated_output_bytes
from server.jobs.operations.protocol import Operation
from server.jobs.operations.thumbnail import THUMBNAIL_NAME
from server.jobs.schemas import MAX_PRIORITY
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.quota.ledger import QuotaLedger
from server.tracing import current_traceparent
from server.videos.model import Video

log = get_logger("frameflow.jobs")

MAX_PROCESS = 5  # operations queued by one upload's ?process=
# A live client's first snapshot lists at most this many jobs per status; more: page the API.
SNAPSHOT_LIMIT = 500


@dataclass(frozen=True)
class PlannedJob:
    """An operation with validated params, ready to be queued for a video."""

    operation: Operation
    params: dict[str, Any]
    estimate: int  # bytes its outputs are expected to take (held in the quota)


# An operation with params as a preset names it, for an upload's jobs.
RequestedJob = tuple[Operation, Mapping[str, Any]]


def _job_not_found() -> NotFound:
    return NotFound("No such job", code="job_not_found")


def _output_not_found() -> NotFound:
    return NotFound("No such job output", code="output_not_found")


class JobService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        operations: Mapping[str, Operation],
        publisher: EventPublisher,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._operations = operations
        self._publisher = publisher

    # --- choosing operations ------------------------------------------------------

    def resolve_operation(self, name: object, video: Video | None = None) -> Operation:
        """The operation called `name`, if it applies to `video`; else a 400 on `operation`."""
        operation = self._operations.get(name) if isinstance(name, str) else None
        if operation is None:
            known = ", ".join(sorted(self._operations))
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

    def parse_process(self, raw: str | None) -> list[Operation]:
        """`?process=frames,thumbnail` as operations (kinds checked later); 400 on `process`."""
        if not raw:
            return []
        names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
        if len(names) > MAX_PROCESS:
            raise BadRequest(
                f"At most {MAX_PROCESS} operations per upload",
                code="invalid_field",
                field="process",
            )
        unknown = [n for n in names if n not in self._operations]
        if unknown:
            known = ", ".join(sorted(self._operations))
            raise BadRequest(
                f"Unknown operation {unknown[0]!r} in 'process'; expected some of: {known}",
                code="unknown_operation",
                field="process",
            )
        return [self._operations[n] for n in names]

    @staticmethod
    def check_process_kind(
        operations: Sequence[Operation], kind: str, *, field: str = "process"
    ) -> None:
        """Before an upload is stored: every requested operation must apply to its kind."""
        for op in operations:
            if kind not in op.kinds:
                raise BadRequest(
                    f"'{op.name}' does not apply to {kind} uploads",
                    code="operation_not_applicable",
                    field=field,
                )

    def plan(self, operation: Operation, raw_params: Mapping[str, Any], video: Video) -> PlannedJob:
        """Validate params against the probed video (400 naming the field)."""
        params = operation.parse_params(raw_params, video, self._settings)
        estimate = estimated_output_bytes(operation, params, video) or 0
        return PlannedJob(operation, params, estimate)

    def plan_defaults(
        self,
        operations: Sequence[Operation],
        video: Video,
        preset: Sequence[RequestedJob] = (),
    ) -> list[PlannedJob]:
        """An upload's ?process= jobs with default params, and its ?preset= jobs with the
        preset's params, checked before anything is kept (400 on `process` or `preset`)."""
        planned = [self.plan(op, {}, video) for op in operations]
        for op, params in preset:
            try:
                planned.append(self.plan(op, params, video))
            except BadRequest as exc:
                raise BadRequest(
                    f"The preset's '{op.name}': {exc.message}",
                    code=exc.error_code,
                    field="preset",
                ) from None
        return planned

    # --- queuing -------------------------------------------------------------------

    async def queue_planned(
        self,
        conn: asyncpg.Connection,
        video: Video,
        planned: Sequence[PlannedJob],
        *,
        priority: int = 0,
        batch_id: uuid.UUID | None = None,
    ) -> list[Job]:
        """Queue jobs inside the caller's transaction (an upload's, with its video's insert;
        a batch's, with its other videos' jobs)."""
        jobs = [
            await self._insert(conn, video, job, priority=priority, batch_id=batch_id)
            for job in planned
        ]
        if jobs:
            await jobs_db.notify_new_job(conn)  # delivered at commit
        return jobs

    async def announce_queued(self, jobs: Sequence[Job]) -> None:
        """After the transaction that queued `jobs` committed."""
        for job in jobs:
            log.info("job_queued", job_id=str(job.id), op=job.operation, video_id=str(job.video_id))
            await self._publisher.job("job.queued", job)

    async def create_job(
        self,
        user_id: uuid.UUID,
        video_id: uuid.UUID,
        operation: object,
        raw_params: object,
        priority: int = 0,
    ) -> Job:
        """Validate and queue one job; 404 unless the video is the user's, 400 naming
        the field, 413 when its estimated outputs do not fit the quota."""
        async with self._pool.acquire() as conn:
            video = await videos_db.get_video(conn, video_id, user_id)
        if video is None:
            raise NotFound("No such video", code="video_not_found")
        op = self.resolve_operation(operation, video)
        if raw_params is None:
            raw_params = {}
        if not isinstance(raw_params, Mapping):
            raise BadRequest("'params' must be an object", code="invalid_params", field="params")
        planned = self.plan(op, raw_params, video)
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise BadRequest("'priority' is out of range", code="invalid_field", field="priority")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                job = await self._insert(conn, video, planned, priority=priority)
                await jobs_db.notify_new_job(conn)  # delivered at commit
        except asyncpg.ForeignKeyViolationError:
            # The video was deleted in between.
            raise NotFound("No such video", code="video_not_found") from None
        await self.announce_queued([job])
        return job

    async def _insert(
        self,
        conn: asyncpg.Connection,
        video: Video,
        planned: PlannedJob,
        *,
        priority: int,
        batch_id: uuid.UUID | None = None,
    ) -> Job:
        job = await jobs_db.insert_job(
            conn,
            user_id=video.user_id,
            video_id=video.id,
            operation=planned.operation.name,
            params=planned.params,
            priority=priority,
            max_attempts=self._settings.job_max_attempts,
            # The attempts continue this request's trace, on whichever worker.
            traceparent=current_traceparent(),
            batch_id=batch_id,
        )
        await QuotaLedger.hold_for_job(conn, video.user_id, job.id, planned.estimate)
        return job

    # --- changing and reading ------------------------------------------------------

    async def cancel_job(self, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
        """Queued: canceled now. Running: its worker is told and stops it within seconds
        (the job returned is still running, with `cancel_requested`). Finished: 409."""
        async with self._pool.acquire() as conn:
            job = await state.request_cancel(conn, job_id, user_id)
        if job.status == CANCELED:
            await self._publisher.job("job.canceled", job)
        log.info("job_cancel_requested", job_id=str(job.id), status=job.status)
        return job

    async def get_job(self, user_id: uuid.UUID, job_id: uuid.UUID) -> tuple[Job, list[OutputFile]]:
        async with self._pool.acquire() as conn:
            job = await jobs_db.get_job(conn, job_id, user_id)
            if job is None:
                raise _job_not_found()
            return job, await jobs_db.list_outputs(conn, job.id)

    async def list_jobs(
        self,
        user_id: uuid.UUID,
        *,
        status: JobStatus | None,
        video_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Job]:
        async with self._pool.acquire() as conn:
            return await jobs_db.list_jobs(
                conn, user_id, status=status, video_id=video_id, limit=limit, before=before
            )

    async def thumbnail_jobs(
        self, user_id: uuid.UUID, video_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID]:
        """video id -> the job whose `thumbnail.jpg` shows it (the newest), for a list page."""
        if not video_ids:
            return {}
        async with self._pool.acquire() as conn:
            return await jobs_db.latest_thumbnail_jobs(conn, user_id, video_ids, THUMBNAIL_NAME)

    async def active_jobs(self, user_id: uuid.UUID) -> list[Job]:
        """Running and queued jobs, oldest first (a live client's first snapshot)."""
        async with self._pool.acquire() as conn:
            jobs = [
                job
                for status in (RUNNING, QUEUED)
                for job in await jobs_db.list_jobs(
                    conn, user_id, status=status, limit=SNAPSHOT_LIMIT
                )
            ]
        jobs.sort(key=lambda j: j.created_at)
        return jobs

    async def job_events(self, user_id: uuid.UUID, job_id: uuid.UUID) -> list[JobEvent]:
        async with self._pool.acquire() as conn:
            if await jobs_db.get_job(conn, job_id, user_id) is None:
                raise _job_not_found()
            return await jobs_db.list_events(conn, job_id)

    async def finished_output(
        self, job_id: uuid.UUID, user_id: uuid.UUID | None, name: str
    ) -> tuple[Job, OutputFile]:
        """An output of a succeeded job (of `user_id`, or anyone's behind a signed token)."""
        async with self._pool.acquire() as conn:
            job = await jobs_db.get_job(conn, job_id, user_id)
            if job is None or job.status != "succeeded":
                raise _output_not_found()
            output = await jobs_db.get_output(conn, job.id, name)
        if output is None:
            raise _output_not_found()
        return job, output

    async def finished_job(self, job_id: uuid.UUID) -> Job:
        """A succeeded job, behind a signed token (404 `output_not_found` otherwise)."""
        async with self._pool.acquire() as conn:
            job = await jobs_db.get_job(conn, job_id, None)
        if job is None or job.status != "succeeded":
            raise _output_not_found()
        return job

    async def open_job_counts(self) -> list[tuple[str, str, int]]:
        """(status, operation, count) of queued and running jobs, for /metrics."""
        async with self._pool.acquire() as conn:
            counts = await jobs_db.count_open_jobs(conn)
        return [(c.status, c.operation, c.count) for c in counts]

    async def source_duration(self, job: Job) -> float | None:
        """The duration of the job's source in seconds (None if unknown or gone):
        how long a playback of its outputs may need."""
        if job.video_id is None:
            return None
        async with self._pool.acquire() as conn:
            video = await videos_db.get_video(conn, job.video_id, None)
        duration = video.metadata.get("duration") if video is not None else None
        return float(duration) if isinstance(duration, int | float) else None
