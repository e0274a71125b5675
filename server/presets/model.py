"""A preset as the rest of the code sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from server.jobs.steps import OperationStep


@dataclass(frozen=True)
class Preset:
    id: uuid.UUID
    name: str
    steps: list[OperationStep]
    created_at: datetime
    updated_at: datetime
