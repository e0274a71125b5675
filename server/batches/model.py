"""A batch as the rest of the code sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.jobs.model import STATUSES


@dataclass(frozen=True)
class Batch:
    id: uuid.UUID
    operations: list[dict[str, Any]]  # [{"operation": name, "params": {...}}] as asked
    preset: str | None
    job_count: int  # jobs created; deleting a video later removes its jobs from `counts`
    created_at: datetime
    counts: dict[str, int]  # status -> jobs in it

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def done(self) -> bool:
        """No job of the batch is queued or running any more."""
        return not (self.count("queued") or self.count("running"))

    def all_counts(self) -> dict[str, int]:
        return {status: self.count(status) for status in STATUSES}
