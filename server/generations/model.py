"""Generation rows as the rest of the code sees them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

# server.generations.state owns every change of it.
GenerationStatus = Literal["queued", "submitted", "running", "succeeded", "failed", "canceled"]
QUEUED: Final = "queued"
SUBMITTED: Final = "submitted"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
STATUSES: tuple[GenerationStatus, ...] = get_args(GenerationStatus)
FINISHED: frozenset[GenerationStatus] = frozenset({SUCCEEDED, FAILED, CANCELED})

# The job operation that runs a generation (jobs.operation).
GENERATE_OPERATION: Final = "generate"


@dataclass(frozen=True)
class Generation:
    id: uuid.UUID
    user_id: uuid.UUID
    job_id: uuid.UUID | None
    status: GenerationStatus
    progress: float
    provider: str
    model: str
    prompt: str
    negative_prompt: str | None
    image_id: uuid.UUID | None
    duration_seconds: int
    resolution: str
    aspect_ratio: str
    seed: int | None
    process: list[str]
    estimate_credits: int
    hold_id: uuid.UUID | None
    credits_charged: int | None
    remote_task_id: str | None
    error_code: str | None
    error: str | None
    video_id: uuid.UUID | None
    idempotency_key: str | None
    request_hash: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
