"""The one small interface every provider implements, and what it trades in.

A remote provider (Sora, Veo, Kling) is driven as: `estimate` (credits, before
anything is paid), `submit` (returns the provider's task id — stored at once,
so a restarted worker resumes with `poll` instead of paying twice), `poll`
until it says succeeded or failed, `fetch_result` (the video, streamed in
chunks, never whole in memory), and `cancel`. The local provider renders in
the worker instead (`server.generations.providers.local`).

Provider failures are `ProviderError`s with a user-facing `code`:
`content_policy` and `invalid_input` (the request's fault: not retried),
`provider_unavailable` (theirs: retried with backoff, counted by the breaker).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

ErrorCode = Literal["content_policy", "invalid_input", "provider_unavailable"]
TaskStatus = Literal["pending", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class GenerationSpec:
    """What to generate, validated against the provider's `ProviderInfo`."""

    prompt: str
    negative_prompt: str | None
    model: str
    duration_seconds: int
    resolution: str  # "720p"
    aspect_ratio: str  # "16:9"
    seed: int | None
    # The reference image as a local file for the length of the run, and its type.
    image: Path | None = None
    image_content_type: str | None = None


@dataclass(frozen=True)
class ProviderInfo:
    """What `GET /api/v1/providers` lists, and what routing checks a request against."""

    name: str
    models: tuple[str, ...]
    resolutions: tuple[str, ...]
    durations: tuple[int, ...]
    aspect_ratios: tuple[str, ...]
    image_to_video: bool
    price_per_second: float  # credits
    configured: bool

    def supports(self, spec: GenerationSpec) -> str | None:
        """None when it can do `spec`, else which field it cannot."""
        if spec.model not in self.models:
            return "model"
        if spec.resolution not in self.resolutions:
            return "resolution"
        if spec.duration_seconds not in self.durations:
            return "duration_seconds"
        if spec.aspect_ratio not in self.aspect_ratios:
            return "aspect_ratio"
        if spec.image is not None and not self.image_to_video:
            return "image_id"
        return None


@dataclass(frozen=True)
class TaskState:
    status: TaskStatus
    progress: float | None = None  # 0-100 when the provider says
    error_code: ErrorCode | None = None
    error: str | None = None


class ProviderError(Exception):
    """A provider refused or failed; `code` is what the user is told."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after
        # Worth trying again soon (429, 5xx); an auth failure is the provider's
        # side too, but no retry mends it.
        self.retryable = code == "provider_unavailable" if retryable is None else retryable

    @property
    def provider_fault(self) -> bool:
        """A strike against the provider's health (the breaker counts these)."""
        return self.code == "provider_unavailable"


class RemoteProvider(Protocol):
    name: str

    def info(self) -> ProviderInfo: ...

    def default_model(self) -> str: ...

    def estimate(self, spec: GenerationSpec) -> int: ...

    async def submit(self, spec: GenerationSpec) -> str: ...

    async def poll(self, task_id: str) -> TaskState: ...

    def fetch_result(self, task_id: str) -> AsyncIterator[bytes]: ...

    async def cancel(self, task_id: str) -> None: ...


def credits_for(price_per_second: float, seconds: int) -> int:
    """Whole credits, rounded up: a fraction of a credit is still charged."""
    import math

    return math.ceil(price_per_second * seconds - 1e-9)
