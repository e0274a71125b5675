"""The envelope of `POST /api/v1/videos/{id}/jobs`, validated and published from here.

Only the envelope: the operation is resolved (and refused as `unknown_operation`)
and the params are checked against its declarations by `JobService`, and the
OpenAPI document describes them from the operation registry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_PRIORITY = 100


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    operation: Any = Field(default=None, description="An operation name (GET /api/v1/operations)")
    params: Any = Field(default=None, description="Its params; omitted ones take their defaults")
    priority: StrictInt = Field(
        default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="Higher runs first"
    )
