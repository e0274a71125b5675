"""OpenAI Sora 2 through the Videos API.

Follows the Videos API as documented at
developers.openai.com/api/docs/guides/video-generation and the API reference
"Videos" (models `sora-2` and `sora-2-pro`; the page announces the API's
shutdown on 2026-09-24 — keep this adapter only while it answers):

- `POST /v1/videos` (multipart form: `model`, `prompt`, `seconds`, `size`,
  optional `input_reference` image file) → a video object `{id, status,
  progress, ...}`;
- `GET /v1/videos/{id}` → `status` `queued` | `in_progress` | `completed` |
  `failed` (with `error {code, message}`), `progress` 0-100;
- `GET /v1/videos/{id}/content` → the MP4;
- `DELETE /v1/videos/{id}` — how a job is withdrawn (there is no cancel).

Errors are `{"error": {"message", "type", "code"}}`; a moderation refusal
(`moderation_blocked`, or any code naming moderation or the content policy)
becomes `content_policy`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from server.generations.providers.base import (
    GenerationSpec,
    ProviderError,
    TaskState,
)
from server.generations.providers.http import (
    ListedProvider,
    error_for_status,
    read_json,
    stream_download,
    timeout,
)

NAME = "sora"
MODELS = ("sora-2", "sora-2-pro")
# (resolution, aspect ratio) → the `size` the API takes.
SIZES = {
    ("720p", "16:9"): "1280x720",
    ("720p", "9:16"): "720x1280",
    ("1080p", "16:9"): "1792x1024",
    ("1080p", "9:16"): "1024x1792",
}
DURATIONS = (4, 8, 12)


def _is_policy(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    text = f"{error.get('code', '')} {error.get('type', '')}".lower()
    return "moderation" in text or "content_policy" in text or "safety" in text


def _message(body: Any, default: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return default


class SoraProvider(ListedProvider):
    name = NAME
    models = MODELS
    durations = DURATIONS

    def __init__(
        self, *, api_key: str, base_url: str, price_per_second: float, timeout_seconds: float
    ) -> None:
        super().__init__(
            base_url=base_url, price_per_second=price_per_second, timeout_seconds=timeout_seconds
        )
        self._key = api_key

    @property
    def configured(self) -> bool:
        return bool(self._key)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout(self._timeout)) as session,
                session.request(
                    method, self._base + path, headers=self._headers(), **kwargs
                ) as resp,
            ):
                body = await read_json(resp)
                if resp.status >= 400:
                    error = body.get("error") if isinstance(body, dict) else None
                    raise error_for_status(
                        NAME,
                        resp.status,
                        resp.headers,
                        _message(body, resp.reason or "error"),
                        content_policy=_is_policy(error),
                    )
                return body
        except aiohttp.ClientError as exc:
            raise ProviderError("provider_unavailable", f"{NAME}: {exc}") from None

    async def submit(self, spec: GenerationSpec) -> str:
        size = SIZES.get((spec.resolution, spec.aspect_ratio))
        if size is None:
            raise ProviderError("invalid_input", f"{NAME} has no size for this request")
        form = aiohttp.FormData()
        form.add_field("model", spec.model)
        form.add_field("prompt", spec.prompt)
        form.add_field("seconds", str(spec.duration_seconds))
        form.add_field("size", size)
        if spec.image is not None:
            # The reference must match `size` (the API's rule); small, read whole.
            form.add_field(
                "input_reference",
                await asyncio.to_thread(spec.image.read_bytes),
                filename="reference",
                content_type=spec.image_content_type or "application/octet-stream",
            )
        body = await self._request("POST", "/v1/videos", data=form)
        if not isinstance(body, dict) or not body.get("id"):
            raise ProviderError("provider_unavailable", f"{NAME}: no video id in the answer")
        return str(body["id"])

    async def poll(self, task_id: str) -> TaskState:
        body = await self._request("GET", f"/v1/videos/{task_id}")
        status = body.get("status") if isinstance(body, dict) else None
        progress = body.get("progress") if isinstance(body, dict) else None
        pct = float(progress) if isinstance(progress, int | float) else None
        if status == "completed":
            return TaskState("succeeded", 100.0)
        if status == "failed":
            error = body.get("error")
            return TaskState(
                "failed",
                pct,
                "content_policy" if _is_policy(error) else "provider_unavailable",
                _message(body, "the video failed"),
            )
        return TaskState("running" if status == "in_progress" else "pending", pct)

    async def fetch_result(self, task_id: str) -> AsyncIterator[bytes]:
        async for chunk in stream_download(
            NAME,
            f"{self._base}/v1/videos/{task_id}/content",
            headers=self._headers(),
            seconds=self._timeout,
        ):
            yield chunk

    async def cancel(self, task_id: str) -> None:
        await self._request("DELETE", f"/v1/videos/{task_id}")
