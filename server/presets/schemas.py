"""The request bodies of `/api/v1/presets`, validated and published from here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from server.jobs.steps import MAX_STEPS, OperationStep

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class PresetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Letters, digits, `_`, `.` and `-`, up to 64; unique per user",
    )
    operations: list[OperationStep] = Field(
        min_length=1, max_length=MAX_STEPS, description="The operations with their params"
    )
