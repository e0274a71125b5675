"""The contract every operation fulfils, and the error an operation fails with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.videos.model import Video

if TYPE_CHECKING:
    # params imports this module: the type is for annotations only.
    from server.jobs.operations.params import OperationParams


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

    # Optional, so operations without them (tests' fakes) still work:
    #     def estimate_output_bytes(self, params: Mapping[str, Any], video: Video) -> int
    # A rough size of the outputs for validated `params`, used to refuse a job
    # that could not fit in its owner's quota. Read it with `estimated_output_bytes`.
    #     param_models: Mapping[str, type[OperationParams]]   (kind -> declaration)
    #     summary: str
    # What GET /api/v1/operations lists. Read the models with `param_models`.


def param_models(op: Operation) -> Mapping[str, type[OperationParams]]:
    """`op`'s param declarations by kind of source; empty when it declares none."""
    models: Mapping[str, type[OperationParams]] = getattr(op, "param_models", {})
    return models
