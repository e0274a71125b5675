"""The one JSON shape of a batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from server.batches.model import Batch


def batch_json(batch: Batch, job_ids: Sequence[uuid.UUID] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(batch.id),
        "created_at": batch.created_at.isoformat(),
        "operations": batch.operations,
        "preset": batch.preset,
        "job_count": batch.job_count,
        "counts": batch.all_counts(),
        "done": batch.done,
    }
    if job_ids is not None:
        body["job_ids"] = [str(i) for i in job_ids]
    return body
