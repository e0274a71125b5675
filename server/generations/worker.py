"""`GenerationWorker`: runs one generation inside a job attempt.

The job runner claims the `generate` job, leases it, heartbeats, times it
out and cancels it like any other; this is the work (steps in order):

1. Load the generation. One that has already ended (a rerun after a crash
   between its video's commit and the job's) has nothing left to do.
2. With a reference image, read it from storage as a local file.
3. `local`: → running, render with ffmpeg in the attempt's scratch dir.
   Remote: unless a task id is stored, submit (through the provider's
   breaker, concurrency limit and retries) and store the id at once
   (→ submitted); then poll until it ends — a restarted worker lands here
   with the stored id and resumes polling instead of paying twice.
4. Stream the result into storage under a new video's key (never whole in
   memory), then `UploadService.accept_stored`: sniff, probe, quota, expiry,
   the `process` jobs — and, inside the video's own transaction, the
   generation → succeeded with the actual cost captured from its hold.

A failure raises `OperationFailed("<code>: <message>")`; the runner fails
the job, and in that transaction `settlement.job_ended` fails the
generation and releases its credits. A cancel or a lost lease stops the
attempt; cancel ends the generation the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from server.db import generations as generations_db
from server.db import videos as videos_db
from server.errors import HTTPError
from server.generations import state
from server.generations.model import RUNNING, SUBMITTED, Generation
from server.generations.providers import local
from server.generations.providers.base import GenerationSpec, ProviderError, RemoteProvider
from server.generations.providers.local import LocalProvider
from server.generations.registry import ProviderRegistry
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import demuxer_for
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress
from server.jobs.operations.protocol import OperationFailed
from server.jobs.service import JobService
from server.live.publisher import EventPublisher
from server.localfiles import file_chunks
from server.logs import get_logger
from server.object_keys import source_key
from server.uploads.service import UploadService

log = get_logger("frameflow.generations")

CHUNK = 1024 * 1024
# Progress is written and published at most this often (~2/s).
PROGRESS_INTERVAL_SECONDS = 0.5
# Rendering or the provider's work is this share of the progress; storing is the rest.
WORK_SHARE = 90.0


def failed(code: str, message: str) -> OperationFailed:
    """The job's error: settlement reads the code back for the generation."""
    return OperationFailed(f"{code}: {message}")


class _Progress:
    """The latest percent, written to the row and published at most every interval."""

    def __init__(self, worker: GenerationWorker, generation: Generation, ctx: JobContext) -> None:
        self._worker = worker
        self._generation_id = generation.id
        self._ctx = ctx
        self.value = generation.progress
        self._sent = generation.progress
        self._changed = asyncio.Event()

    def report(self, percent: float) -> None:
        if percent > self.value:
            self.value = min(percent, 100.0)
            self._ctx.report_progress(self.value)
            self._changed.set()

    async def pump(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self.value > self._sent:
                self._sent = self.value
                await self._worker.write_progress(self._generation_id, self.value)
            await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)


class GenerationWorker:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        providers: ProviderRegistry,
        uploads: UploadService,
        jobs: JobService,
        publisher: EventPublisher,
    ) -> None:
        self._pool = pool
        self._providers = providers
        self._uploads = uploads
        self._jobs = jobs
        self._publisher = publisher

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        generation_id = uuid.UUID(str(ctx.job.params.get("generation_id")))
        async with self._pool.acquire() as conn:
            generation = await generations_db.get_generation(conn, generation_id, None)
        if generation is None or generation.finished:
            return []
        provider = self._providers.get(generation.provider)
        if provider is None:
            raise failed("provider_unavailable", f"{generation.provider} is not available")
        progress = _Progress(self, generation, ctx)
        pump = asyncio.create_task(progress.pump(), name=f"generation-{generation.id}-progress")
        try:
            async with self._reference_image(ctx, generation) as (image, content_type):
                spec = _spec(generation, image, content_type)
                if isinstance(provider, LocalProvider):
                    await self._render_local(ctx, generation, spec, progress)
                    return []
                await self._run_remote(ctx, generation, provider, spec, progress)
                return []
        except ProviderError as exc:
            raise failed(exc.code, exc.message) from None
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    # --- the reference image ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reference_image(
        self, ctx: JobContext, generation: Generation
    ) -> AsyncIterator[tuple[Path | None, str | None]]:
        if generation.image_id is None:
            yield None, None
            return
        async with self._pool.acquire() as conn:
            image = await videos_db.get_video(conn, generation.image_id, generation.user_id)
        if image is None or image.kind != "image":
            raise failed("invalid_input", "the reference image no longer exists")
        async with ctx.storage.local_path(image.storage_key) as path:
            yield path, image.content_type

    # --- local ------------------------------------------------------------------------------

    async def _render_local(
        self, ctx: JobContext, generation: Generation, spec: GenerationSpec, progress: _Progress
    ) -> None:
        generation = await self._move(generation, RUNNING)
        plan = local.plan(spec)
        font = local.find_font(ctx.settings.generation_font_file)
        text_file = ctx.workdir / "prompt.txt"
        await asyncio.to_thread(
            text_file.write_text,
            local.wrap_prompt(spec.prompt, plan.width, max(12, plan.height // 18)),
            "utf-8",
        )
        output = ctx.workdir / "generated.mp4"
        args = local.local_argv(
            plan,
            output=output,
            image=spec.image,
            image_demuxer=demuxer_for(spec.image_content_type) if spec.image_content_type else None,
            text_file=text_file if font else None,
            font_file=font,
        )
        await run_ffmpeg_with_progress(
            ctx,
            args,
            duration=float(plan.duration),
            on_percent=lambda p: progress.report(p * WORK_SHARE / 100),
        )
        cost = self._providers.local.estimate(spec)
        await self._store(ctx, generation, _file_chunks(output), cost, progress)

    # --- remote -------------------------------------------------------------------------------

    async def _run_remote(
        self,
        ctx: JobContext,
        generation: Generation,
        provider: RemoteProvider,
        spec: GenerationSpec,
        progress: _Progress,
    ) -> None:
        health = self._providers.health[provider.name]
        task_id = generation.remote_task_id
        if task_id is None:
            task_id = await health.call(lambda: provider.submit(spec), ctx.touch)
            generation = await self._move(generation, SUBMITTED, remote_task_id=task_id)
            self._publisher.generation("generation.submitted", generation)
            log.info("generation_submitted", generation_id=str(generation.id), task_id=task_id)
        else:
            log.info("generation_resumed", generation_id=str(generation.id), task_id=task_id)
        poll_every = ctx.settings.generation_poll_seconds
        while True:
            ctx.touch()
            current = await health.call(lambda: provider.poll(task_id), ctx.touch)
            if current.status == "failed":
                raise ProviderError(
                    current.error_code or "provider_unavailable",
                    current.error or f"{provider.name} could not make the video",
                )
            if current.status in ("running", "succeeded") and generation.status != RUNNING:
                generation = await self._move(generation, RUNNING)
            if current.progress is not None:
                progress.report(current.progress * WORK_SHARE / 100)
            if current.status == "succeeded":
                break
            await asyncio.sleep(poll_every)
        cost = provider.estimate(spec)
        await self._store(ctx, generation, provider.fetch_result(task_id), cost, progress)

    # --- the result ---------------------------------------------------------------------------

    async def _store(
        self,
        ctx: JobContext,
        generation: Generation,
        chunks: AsyncIterator[bytes],
        cost: int,
        progress: _Progress,
    ) -> None:
        """Stream the result into storage, then make it the user's video and end the
        generation as succeeded, charged, in the video's own transaction."""
        video_id = uuid.uuid4()
        key = source_key(generation.user_id, video_id)
        digest = hashlib.sha256()
        async with ctx.storage.writer(key, "video/mp4") as writer:
            async with contextlib.aclosing(chunks) as stream:  # type: ignore[type-var]
                async for chunk in stream:
                    digest.update(chunk)
                    await writer.write(chunk)
                    ctx.touch()
            info = await writer.commit()
        progress.report(WORK_SHARE + 5)
        process = self._jobs.parse_process(",".join(generation.process))
        finished: list[Generation] = []

        async def succeed_with_video(conn: asyncpg.Connection, stored_id: uuid.UUID) -> None:
            # `stored_id` is the video's id as inserted (only a duplicate image differs).
            current = await generations_db.get_generation(conn, generation.id, None, lock=True)
            if current is None or current.status not in (RUNNING, SUBMITTED):
                raise failed("generation_failed", "the generation ended meanwhile")
            done = await state.succeed(conn, current, stored_id, cost)
            assert done is not None  # the row is locked
            finished.append(done)

        try:
            await self._uploads.accept_stored(
                user_id=generation.user_id,
                video_id=video_id,
                filename=f"generation-{generation.id}.mp4",
                key=key,
                size=info.size,
                sha256=digest.hexdigest(),
                process=process,
                before_insert=succeed_with_video,
            )
        except HTTPError as exc:  # the result is not a usable video, or over the quota
            raise failed("generation_failed", exc.message) from None
        self._publisher.generation("generation.succeeded", finished[0])
        log.info("generation_succeeded", generation_id=str(generation.id), video_id=str(video_id))

    # --- rows ------------------------------------------------------------------------------------

    async def _move(
        self, generation: Generation, target: str, *, remote_task_id: str | None = None
    ) -> Generation:
        async with self._pool.acquire() as conn:
            if target == SUBMITTED:
                assert remote_task_id is not None
                moved = await state.submitted(conn, generation, remote_task_id)
            else:
                moved = await state.running(conn, generation)
        if moved is None:  # canceled (or failed) meanwhile: stop here
            raise failed("generation_failed", "the generation ended meanwhile")
        return moved

    async def write_progress(self, generation_id: uuid.UUID, percent: float) -> None:
        try:
            async with self._pool.acquire() as conn:
                generation = await generations_db.update_progress(conn, generation_id, percent)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("generation_progress_write_failed", error=str(exc))
            return
        if generation is not None:
            self._publisher.generation("generation.progress", generation)


def _spec(generation: Generation, image: Path | None, content_type: str | None) -> GenerationSpec:
    return GenerationSpec(
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        model=generation.model,
        duration_seconds=generation.duration_seconds,
        resolution=generation.resolution,
        aspect_ratio=generation.aspect_ratio,
        seed=generation.seed,
        image=image,
        image_content_type=content_type,
    )


def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    return file_chunks(path, CHUNK)
