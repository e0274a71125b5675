"""An operation with its params as a request names it: one step of a batch or a preset.

The params are checked against the operation's declarations (and, for a batch,
against each probed video) by the services, which name the step in the 400.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Steps in one batch or preset: each is a job per video.
MAX_STEPS = 5


class OperationStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: str = Field(
        min_length=1, max_length=64, description="An operation name (GET /api/v1/operations)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Its params; omitted ones take their defaults"
    )


def steps_json(steps: list[OperationStep]) -> list[dict[str, Any]]:
    return [{"operation": s.operation, "params": s.params} for s in steps]
