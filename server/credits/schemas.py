"""The request body of an admin's credit change, validated and published from here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Well inside bigint; a typo of a few zeros must not be accepted silently either.
MAX_CHANGE = 1_000_000_000


class CreditChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["grant", "adjustment"] = Field(
        default="grant",
        description="`grant` adds credits; `adjustment` is a signed correction",
    )
    amount: int = Field(ge=-MAX_CHANGE, le=MAX_CHANGE, description="Credits (positive for a grant)")
    reason: str | None = Field(default=None, max_length=500, description="Why, for the ledger")
