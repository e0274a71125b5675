"""The job operation `generate`: how a generation rides the job engine.

It is given to the job runner only (never to `POST /videos/{id}/jobs`, whose
registry does not list it): its jobs are queued by `GenerationService`, have
no source video, and do their work in `GenerationWorker`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.settings import Settings
from server.errors import BadRequest
from server.generations.model import GENERATE_OPERATION
from server.generations.worker import GenerationWorker
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.videos.model import Video


class GenerateOperation:
    name = GENERATE_OPERATION
    kinds: frozenset[str] = frozenset()  # applies to no upload
    summary = "Generate a video (queued by POST /api/v1/generations)"

    def __init__(self, worker: GenerationWorker) -> None:
        self._worker = worker

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        raise BadRequest(
            "Generations are made with POST /api/v1/generations",
            code="unknown_operation",
            field="operation",
        )

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        return await self._worker.run(ctx)
