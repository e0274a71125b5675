"""The request body of an admin's account change, validated and published from here."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from server.auth.permissions import Role

MAX_QUOTA_BYTES = 2**63 - 1  # PostgreSQL bigint


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # Strict: `true` must not read as a quota of 1 byte, nor "10" as 10.
    quota_bytes: StrictInt | None = Field(
        default=None, ge=0, le=MAX_QUOTA_BYTES, description="The storage quota in bytes"
    )
    role: Role | None = Field(default=None, description="The account's role")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.quota_bytes is None and self.role is None:
            raise PydanticCustomError("missing_change", "Give quota_bytes and/or role")
        return self
