"""A resumable (tus) upload as the rest of the code sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

from server.storage.base import AppendState

# A Literal, so that mypy catches a misspelt status; server.tus.state owns changes.
TusStatus = Literal["uploading", "completing", "completed", "failed", "terminated", "expired"]
UPLOADING: Final = "uploading"
COMPLETING: Final = "completing"  # every byte is stored; becoming a video
COMPLETED: Final = "completed"
FAILED: Final = "failed"  # refused when it was complete (type, probe, process, quota)
TERMINATED: Final = "terminated"
EXPIRED: Final = "expired"
STATUSES: tuple[TusStatus, ...] = get_args(TusStatus)
UNFINISHED: frozenset[TusStatus] = frozenset({UPLOADING, COMPLETING})


@dataclass(frozen=True)
class TusUpload:
    id: uuid.UUID
    user_id: uuid.UUID
    video_id: uuid.UUID
    status: TusStatus
    upload_length: int | None  # None while deferred
    upload_offset: int
    reserved_bytes: int
    filename: str
    metadata: dict[str, str]  # Upload-Metadata as sent (values decoded)
    process: list[str]
    ttl_seconds: int | None
    storage: AppendState
    error: dict[str, Any] | None  # {status, code, message} of a failed upload
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    cleaned_at: datetime | None
    past_expiry: bool  # expires_at has passed, by the database's clock

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED

    @property
    def expired(self) -> bool:
        """410 from now on: swept, or past its expiry and not yet swept."""
        return self.status == EXPIRED or (self.unfinished and self.past_expiry)
