"""A stored video (or image) as the rest of the code sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Video:
    id: uuid.UUID
    user_id: uuid.UUID
    filename: str
    storage_key: str
    size: int
    sha256: str
    content_type: str
    kind: str
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    # Always set on rows; None only on a Video built in memory before it is stored.
    expires_at: datetime | None = None
    # Set with PATCH; None means "the file name" (see `display_title`).
    title: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def display_title(self) -> str:
        return self.title or self.filename
