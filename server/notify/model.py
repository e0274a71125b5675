"""A queued job email as the outbox sees it (a `notification_log` row)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    job_id: uuid.UUID | None
    event: str
    recipient: str
    subject: str | None
    facts: dict[str, Any]
    status: str
    attempts: int
    error: str | None
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
