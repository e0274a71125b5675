"""`BatchService`: many jobs queued by one request — all of them, or none.

Creating a batch, in order:

1. the operations: the request's own, or a saved preset's (400 naming the step);
2. the videos: the ids given (duplicates dropped), or every video a search matches
   (the search service's query); more than `batch_max_jobs` jobs is a 400 before
   any work;
3. one transaction: the user's videos among them are share-locked (a delete
   cannot slip in); any id that is missing or someone else's is a 404 naming it;
   each job is planned against its probed video (400 naming the step and the
   video); the sum of the estimates must fit the quota (413 naming the sum);
   then the batch row and every job with its hold in the ledger. Any refusal
   rolls everything back, so nothing is queued;
4. after the commit, each job is announced like any other.

A batch is followed by counting its jobs by status, and canceled by canceling
each of its open jobs (a running one stops within seconds, as a single cancel).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from multidict import MultiDict

from config.settings import Settings
from server.batches.model import Batch
from server.batches.schemas import CreateBatch
from server.db import batches as batches_db
from server.errors import BadRequest, Conflict, NotFound
from server.jobs.operations.protocol import Operation
from server.jobs.service import JobService, PlannedJob
from server.jobs.steps import OperationStep, steps_json
from server.logs import get_logger
from server.presets.service import PresetService
from server.quota.ledger import QuotaLedger
from server.search.params import parse_search
from server.search.service import SearchService
from server.videos.model import Video

log = get_logger("frameflow.batches")


def _batch_not_found() -> NotFound:
    return NotFound("No such batch", code="batch_not_found")


def _in_step(exc: BadRequest, index: int, video: Video | None) -> BadRequest:
    """`exc` about one step (and video), named so that the client can find it."""
    field = exc.details.get("field")
    where = f"operations[{index}]"
    on = f" on video {video.id}" if video is not None else ""
    details = dict(exc.details)
    details["field"] = f"{where}.{field}" if field else where
    if video is not None:
        details["video_id"] = str(video.id)
    return BadRequest(f"{where}{on}: {exc.message}", code=exc.error_code, **details)


class BatchService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        jobs: JobService,
        search: SearchService,
        presets: PresetService,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._jobs = jobs
        self._search = search
        self._presets = presets

    async def create(
        self, user_id: uuid.UUID, request: CreateBatch
    ) -> tuple[Batch, list[uuid.UUID]]:
        """Queue every job of the batch or none; returns the batch and its job ids."""
        steps = await self._steps(user_id, request)
        operations = [self._resolve(i, step) for i, step in enumerate(steps)]
        video_ids = await self._video_ids(user_id, request, len(steps))
        batch_id = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            videos = await self._owned(conn, user_id, video_ids)
            planned = [self._plan(video, operations, steps) for video in videos]
            estimate = sum(job.estimate for jobs in planned for job in jobs)
            await QuotaLedger.require_room(conn, user_id, estimate)
            await batches_db.insert_batch(
                conn,
                batch_id=batch_id,
                user_id=user_id,
                operations=steps_json(steps),
                preset=request.preset,
                job_count=len(videos) * len(steps),
            )
            jobs = []
            for video, video_jobs in zip(videos, planned, strict=True):
                jobs += await self._jobs.queue_planned(
                    conn, video, video_jobs, priority=request.priority, batch_id=batch_id
                )
            batch = await batches_db.get_batch(conn, batch_id, user_id)
        assert batch is not None
        log.info("batch_queued", batch_id=str(batch_id), jobs=len(jobs), estimate=estimate)
        await self._jobs.announce_queued(jobs)
        return batch, [job.id for job in jobs]

    async def get(self, user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
        async with self._pool.acquire() as conn:
            batch = await batches_db.get_batch(conn, batch_id, user_id)
        if batch is None:
            raise _batch_not_found()
        return batch

    async def cancel(self, user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
        """Cancel every queued job now and ask every running one to stop."""
        async with self._pool.acquire() as conn:
            if await batches_db.get_batch(conn, batch_id, user_id) is None:
                raise _batch_not_found()
            open_jobs = await batches_db.open_job_ids(conn, batch_id)
        for job_id in open_jobs:
            try:
                await self._jobs.cancel_job(user_id, job_id)
            except (Conflict, NotFound):
                continue  # it finished (or its video went) in the meantime
        log.info("batch_cancel_requested", batch_id=str(batch_id), jobs=len(open_jobs))
        return await self.get(user_id, batch_id)

    # --- steps of create -----------------------------------------------------------

    async def _steps(self, user_id: uuid.UUID, request: CreateBatch) -> list[OperationStep]:
        if request.preset is not None:
            return (await self._presets.get(user_id, request.preset)).steps
        assert request.operations is not None  # the schema asks for one of the two
        return request.operations

    def _resolve(self, index: int, step: OperationStep) -> Operation:
        try:
            return self._jobs.resolve_operation(step.operation)
        except BadRequest as exc:
            raise _in_step(exc, index, None) from None

    async def _video_ids(
        self, user_id: uuid.UUID, request: CreateBatch, steps: int
    ) -> list[uuid.UUID]:
        most = self._settings.batch_max_jobs // steps
        if request.video_ids is not None:
            ids = list(dict.fromkeys(request.video_ids))
        else:
            assert request.query is not None
            query = parse_search(MultiDict(request.query.as_query_string()), limit=1)
            ids = await self._search.matching_ids(user_id, query, most + 1)
            if not ids:
                raise BadRequest("The query matches no video", code="no_videos", field="query")
        if len(ids) > most:
            raise BadRequest(
                f"A batch makes at most {self._settings.batch_max_jobs} jobs; this one "
                f"would make {len(ids) * steps if request.video_ids else 'more'}",
                code="batch_too_large",
                field="video_ids" if request.video_ids is not None else "query",
                max_jobs=self._settings.batch_max_jobs,
            )
        return ids

    @staticmethod
    async def _owned(
        conn: asyncpg.Connection, user_id: uuid.UUID, video_ids: list[uuid.UUID]
    ) -> list[Video]:
        found = {v.id: v for v in await batches_db.lock_owned_videos(conn, user_id, video_ids)}
        missing = [str(i) for i in video_ids if i not in found]
        if missing:
            raise NotFound(
                f"No such video: {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                code="video_not_found",
                video_ids=missing[:100],
            )
        return [found[i] for i in video_ids]

    def _plan(
        self, video: Video, operations: Sequence[Operation], steps: Sequence[OperationStep]
    ) -> list[PlannedJob]:
        planned = []
        for index, (operation, step) in enumerate(zip(operations, steps, strict=True)):
            try:
                self._jobs.resolve_operation(operation.name, video)  # applies to its kind?
                planned.append(self._jobs.plan(operation, step.params, video))
            except BadRequest as exc:
                raise _in_step(exc, index, video) from None
        return planned
