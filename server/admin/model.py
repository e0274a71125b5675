"""What the admin console reads: the system summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WorkerSeen:
    worker_id: str
    concurrency: int
    running: int
    started_at: datetime
    seen_at: datetime


@dataclass(frozen=True)
class SystemSummary:
    users_by_role: dict[str, int]
    users_disabled: int
    videos: int
    video_bytes: int
    output_bytes: int
    jobs_by_status: dict[str, int]
    workers: list[WorkerSeen]  # seen in the last minute

    @property
    def bytes_stored(self) -> int:
        return self.video_bytes + self.output_bytes
