"""The webhook domain's records: registered hooks and their deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The job endings a hook may subscribe to (sql/005_webhooks.sql queues these).
EVENTS = ("job.succeeded", "job.failed", "job.canceled", "direct_upload.completed")


@dataclass(frozen=True)
class Webhook:
    id: uuid.UUID
    user_id: uuid.UUID
    url: str
    events: list[str]
    secret: str
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    data: dict[str, Any]
    status: str
    attempts: int
    response_status: int | None
    error: str | None
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    created_at: datetime
