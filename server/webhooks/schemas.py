"""The request body of `POST /api/v1/webhooks`, validated and published from here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from server.webhooks.ssrf import MAX_URL_CHARS

# The same names as server.webhooks.model.EVENTS (a test keeps them equal).
Event = Literal["job.succeeded", "job.failed", "job.canceled", "direct_upload.completed"]


class CreateWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: StrictStr = Field(
        max_length=MAX_URL_CHARS,
        description="Where to POST events; never a private address",
        json_schema_extra={"format": "uri"},
    )
    events: list[Event] = Field(min_length=1, description="What to be told about")
