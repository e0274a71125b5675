"""`GenerationService`: queue, read and cancel generations; list providers.

Creating one (`create`), in order:
1. Validate the body (pydantic, 400 naming the field) and the reference
   image: one of the caller's videos of kind `image` (404 otherwise).
2. Route it (`ProviderRegistry.choose`: the named provider, or the cheapest
   healthy one that can, 422 when none can) and estimate its cost.
3. Check the `process` operations (400 naming them) before anything is kept.
4. One transaction: the generation row (with the `Idempotency-Key`: the same
   key and body return the first generation; the same key with another body
   is a 422), the credit hold of the estimate (402 when the balance lacks
   it), the `generate` job on the job engine, NOTIFY.
5. After the commit: `job.queued` and `generation.queued`.

Cancel: the job's own cancel (`jobs.state.request_cancel`): a queued one ends
at once, a running one when its worker has stopped; either way the
generation ends canceled and its credits are released in that transaction
(`settlement.job_ended`). A task already submitted to a remote provider is
canceled there too (best effort).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from config.settings import Settings
from server.credits.ledger import CreditLedger
from server.db import generations as generations_db
from server.db import jobs as jobs_db
from server.db import videos as videos_db
from server.errors import Conflict, NotFound, Unprocessable
from server.generations.model import (
    FINISHED,
    GENERATE_OPERATION,
    Generation,
)
from server.generations.providers.base import GenerationSpec, ProviderError
from server.generations.providers.local import LocalProvider
from server.generations.registry import PLACEHOLDER_IMAGE, ProviderListing, ProviderRegistry
from server.generations.schemas import CreateGeneration
from server.jobs import state as job_state
from server.jobs.model import Job
from server.jobs.service import JobService
from server.live.events import JobEventType
from server.live.publisher import EventPublisher
from server.logs import get_logger

log = get_logger("frameflow.generations")

MAX_IDEMPOTENCY_KEY = 200


def _not_found() -> NotFound:
    return NotFound("No such generation", code="generation_not_found")


def request_hash(body: CreateGeneration) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class GenerationService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        providers: ProviderRegistry,
        ledger: CreditLedger,
        jobs: JobService,
        publisher: EventPublisher,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._providers = providers
        self._ledger = ledger
        self._jobs = jobs
        self._publisher = publisher

    def providers(self) -> list[ProviderListing]:
        return self._providers.listing()

    async def create(
        self, user_id: uuid.UUID, body: CreateGeneration, idempotency_key: str | None
    ) -> tuple[Generation, bool]:
        """The generation, and whether this call made it (False: an idempotent repeat)."""
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise Unprocessable(
                    f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters",
                    code="invalid_idempotency_key",
                )
            existing = await self._repeat(user_id, idempotency_key, request_hash(body))
            if existing is not None:
                return existing, False
        if body.image_id is not None:
            async with self._pool.acquire() as conn:
                image = await videos_db.get_video(conn, body.image_id, user_id)
            if image is None or image.kind != "image":
                raise NotFound("No such image", code="image_not_found", field="image_id")
        spec = GenerationSpec(
            prompt=body.prompt,
            negative_prompt=body.negative_prompt,
            model=body.model or "",
            duration_seconds=body.duration_seconds,
            resolution=body.resolution,
            aspect_ratio=body.aspect_ratio,
            seed=body.seed,
            image=PLACEHOLDER_IMAGE if body.image_id else None,
        )
        provider, spec = self._providers.choose(body.provider, body.model, spec)
        estimate = provider.estimate(spec)
        process = self._jobs.parse_process(",".join(body.process))
        self._jobs.check_process_kind(process, "video")
        generation_id = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            generation = await generations_db.insert_generation(
                conn,
                generation_id,
                user_id,
                provider=provider.name,
                model=spec.model,
                prompt=body.prompt,
                negative_prompt=body.negative_prompt,
                image_id=body.image_id,
                duration_seconds=body.duration_seconds,
                resolution=body.resolution,
                aspect_ratio=body.aspect_ratio,
                seed=body.seed,
                process=[op.name for op in process],
                estimate_credits=estimate,
                idempotency_key=idempotency_key,
                request_hash=request_hash(body),
            )
            if generation is None:  # a concurrent request with the same key won
                conflict = True
            else:
                conflict = False
                hold = await self._ledger.hold(
                    conn, user_id, estimate, reference=f"generation:{generation.id}"
                )
                job = await jobs_db.insert_job(
                    conn,
                    user_id=user_id,
                    video_id=None,
                    operation=GENERATE_OPERATION,
                    params={"generation_id": str(generation.id)},
                    priority=0,
                    max_attempts=self._settings.job_max_attempts,
                )
                generation = await generations_db.attach_work(conn, generation.id, job.id, hold.id)
                await jobs_db.notify_new_job(conn)
        if conflict:
            assert idempotency_key is not None
            existing = await self._repeat(user_id, idempotency_key, request_hash(body))
            assert existing is not None
            return existing, False
        assert generation is not None
        await self._publisher.job("job.queued", job)
        self._publisher.generation("generation.queued", generation)
        log.info(
            "generation_queued",
            generation_id=str(generation.id),
            provider=generation.provider,
            estimate=estimate,
        )
        return generation, True

    async def _repeat(self, user_id: uuid.UUID, key: str, digest: str) -> Generation | None:
        async with self._pool.acquire() as conn:
            existing = await generations_db.get_by_idempotency_key(conn, user_id, key)
        if existing is not None and existing.request_hash != digest:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
            )
        return existing

    async def get(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
        async with self._pool.acquire() as conn:
            generation = await generations_db.get_generation(conn, generation_id, user_id)
        if generation is None:
            raise _not_found()
        return generation

    async def list(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[Generation]:
        async with self._pool.acquire() as conn:
            return await generations_db.list_generations(conn, user_id, limit=limit, before=before)

    async def cancel(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
        """Queued: canceled now. Running: its worker stops within seconds (the
        generation returned may still be running). Finished: 409."""
        generation = await self.get(user_id, generation_id)
        if generation.status in FINISHED or generation.job_id is None:
            raise Conflict(
                f"The generation has already {generation.status}", code="generation_finished"
            )
        async with self._pool.acquire() as conn:
            try:
                job = await job_state.request_cancel(conn, generation.job_id, user_id)
            except (Conflict, NotFound):
                job = None
            current = await generations_db.get_generation(conn, generation_id, user_id)
        assert current is not None
        if job is not None and job.status == "canceled":
            await self._publisher.job("job.canceled", job)
        if current.status == "canceled":
            self._publisher.generation("generation.canceled", current)
        await self._cancel_remote(current)
        return current

    async def _cancel_remote(self, generation: Generation) -> None:
        provider = self._providers.get(generation.provider)
        if generation.remote_task_id is None or provider is None:
            return
        if isinstance(provider, LocalProvider):
            return
        try:
            await provider.cancel(generation.remote_task_id)
        except ProviderError as exc:
            log.warning(
                "generation_remote_cancel_failed", generation_id=str(generation.id), error=str(exc)
            )

    async def publish_job_event(self, kind: JobEventType, job: Job) -> None:
        """The runner's publish callback: the job's event, and for a generation's job
        that ended failed or canceled, the generation's own (it ended with the job)."""
        await self._publisher.job(kind, job)
        if job.operation != GENERATE_OPERATION or kind not in ("job.failed", "job.canceled"):
            return
        async with self._pool.acquire() as conn:
            generation = await generations_db.get_by_job(conn, job.id)
        if generation is None:
            return
        if generation.status == "failed":
            self._publisher.generation("generation.failed", generation)
        elif generation.status == "canceled":
            self._publisher.generation("generation.canceled", generation)
