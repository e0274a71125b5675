"""The request body of `POST /api/v1/api-keys`, validated and published from here."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The same names as server.auth.permissions.SCOPES (a test keeps them equal).
Scope = Literal["videos:read", "videos:write", "jobs:write", "webhooks", "admin"]


class CreateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="A label for the key")
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=5,
        description="What the key may do; `admin` only for administrators",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (RFC 3339, with a time zone)"
    )
