"""The request body of `POST /api/v1/jobs/batch`, validated and published from here."""

from __future__ import annotations

import uuid
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from server.jobs.steps import MAX_STEPS, OperationStep
from server.search.text import MAX_QUERY_CHARS
from server.videos.metadata import MAX_TAG_CHARS, MAX_TAGS

# The ids one request may list; the job limit (a setting) usually bites first.
MAX_VIDEO_IDS = 10_000


class BatchQuery(BaseModel):
    """The same search as `GET /api/v1/videos` takes: every video it matches."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(default="", max_length=MAX_QUERY_CHARS, description="Words to search for")
    kind: str | None = Field(default=None, max_length=16)
    status: str | None = Field(default=None, max_length=32)
    duration: str | None = Field(default=None, max_length=16)
    uploaded: str | None = Field(default=None, max_length=16)
    tag: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    def as_query_string(self) -> list[tuple[str, str]]:
        pairs = [("q", self.q)]
        for name in ("kind", "status", "duration", "uploaded"):
            value = getattr(self, name)
            if value is not None:
                pairs.append((name, value))
        pairs += [("tag", t[: MAX_TAG_CHARS + 1]) for t in self.tag]
        return pairs


class CreateBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_ids: list[uuid.UUID] | None = Field(
        default=None, min_length=1, max_length=MAX_VIDEO_IDS, description="The videos, or `query`"
    )
    query: BatchQuery | None = Field(
        default=None, description="Every video this search matches, instead of `video_ids`"
    )
    operations: list[OperationStep] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="One job per video and operation; or `preset`",
    )
    preset: str | None = Field(
        default=None, min_length=1, max_length=100, description="A saved preset's name"
    )
    priority: StrictInt = Field(default=0, ge=-100, le=100)

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        if (self.video_ids is None) == (self.query is None):
            raise ValueError("give either 'video_ids' or 'query'")
        if (self.operations is None) == (self.preset is None):
            raise ValueError("give either 'operations' or 'preset'")
        return self
