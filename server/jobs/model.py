"""Job rows and outputs as the rest of the code sees them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

# A Literal, so that mypy catches a misspelt status; server.jobs.state owns changes.
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINISHED: frozenset[JobStatus] = frozenset({SUCCEEDED, FAILED, CANCELED})


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    user_id: uuid.UUID
    video_id: uuid.UUID | None  # None only for work without a source (a generation)
    operation: str
    params: dict[str, Any]
    status: JobStatus
    priority: int
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # W3C trace context of the request that queued it (tracing on), for the attempts.
    traceparent: str | None = None


@dataclass(frozen=True)
class OutputFile:
    """One stored output. `name` is relative to the job ("frames.zip", "hls/720p/index.m3u8")."""

    name: str
    storage_key: str
    size: int
    content_type: str


@dataclass(frozen=True)
class JobEvent:
    attempt: int
    worker_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error: str | None
