"""A direct upload's record and its states."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

WAITING: Final = "waiting"
UPLOADING: Final = "uploading"
DONE: Final = "done"
CANCELED: Final = "canceled"
# Shown, never stored: a waiting or uploading row past its expiry.
EXPIRED: Final = "expired"

StoredStatus = Literal["waiting", "uploading", "done", "canceled"]
Status = Literal["waiting", "uploading", "done", "canceled", "expired"]


@dataclass(frozen=True)
class DirectUpload:
    id: uuid.UUID
    user_id: uuid.UUID
    status: StoredStatus
    max_bytes: int
    allowed_types: list[str]
    process: list[str]
    ttl_seconds: int | None
    preset: str | None  # a preset of the creator's, by name: its jobs at completion
    metadata: dict[str, Any]
    cors_origin: str | None
    video_id: uuid.UUID | None
    tus_upload_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    @property
    def expired(self) -> bool:
        return self.status in (WAITING, UPLOADING) and self.expires_at <= datetime.now(UTC)

    @property
    def shown_status(self) -> Status:
        return EXPIRED if self.expired else self.status


@dataclass(frozen=True)
class CreatedDirectUpload:
    upload: DirectUpload
    token: str  # the URL's secret, shown once
