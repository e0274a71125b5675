"""A caption track as the rest of the code sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Caption:
    video_id: uuid.UUID
    language: str  # a BCP 47 tag, e.g. "en" or "pt-BR"
    label: str  # what a player's menu shows
    source_format: str  # "vtt" or "srt": what was uploaded
    cue_count: int
    size: int  # bytes of the WebVTT served
    created_at: datetime
