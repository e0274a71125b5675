"""The request body of `POST /api/v1/generations`, validated and published from here."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

MAX_PROMPT = 2000


class CreateGeneration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, description="What to make")
    negative_prompt: str | None = Field(
        default=None, max_length=MAX_PROMPT, description="What to avoid (where supported)"
    )
    image_id: uuid.UUID | None = Field(
        default=None, description="One of your images (a video of kind `image`) to start from"
    )
    provider: str = Field(
        default="auto",
        max_length=40,
        description="A provider from GET /api/v1/providers, or `auto` (the cheapest that can)",
    )
    model: str | None = Field(
        default=None, max_length=100, description="The provider's model; default its own"
    )
    duration_seconds: int = Field(ge=1, le=600, description="Length of the video")
    resolution: str = Field(default="720p", max_length=20, description="e.g. `720p`")
    aspect_ratio: str = Field(default="16:9", max_length=10, description="e.g. `16:9`")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="For repeatability")
    process: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Operations to queue on the result (as `?process=` on uploads)",
    )
