"""The contract every operation fulfils, and the error an operation fails with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from config.settings import Settings
from server.db.videos import Video
from server.jobs.context import JobContext
from server.jobs.model import OutputFile


class OperationFailed(Exception):
    """The operation could not produce its outputs; the message is shown to the user."""


class Operation(Protocol):
    name: str
    kinds: frozenset[str]  # which sources it applies to: "video", "image"

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        """Validated params with defaults filled in (JSON-able); BadRequest names the field."""
        ...

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        """Do the work; store outputs under ctx.output_prefix; return them."""
        ...

    # Optional, so operations without it (tests' fakes) still work:
    #     def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int
    # A rough size of the outputs for validated `params`, used to refuse a job
    # that could not fit in its owner's quota. Read it with `estimated_output_bytes`.
