"""Google Veo 3 through the Gemini API (long-running operations).

Follows the Gemini API's video generation guide (ai.google.dev/gemini-api/
docs/video, REST tab) as published for Veo 3 / 3.1:

- `POST {base}/v1beta/models/{model}:predictLongRunning` with the key in
  `x-goog-api-key`, body `{"instances": [{"prompt", "image"?: {
  "bytesBase64Encoded", "mimeType"}}], "parameters": {"aspectRatio",
  "resolution", "negativePrompt", "durationSeconds", "seed"?}}` → an
  operation `{"name": "models/.../operations/..."}`;
- `GET {base}/v1beta/{name}` until `"done": true`: then `error {code,
  message}`, or `response.generateVideoResponse.generatedSamples[0].video.uri`
  (content filtered: `raiMediaFilteredCount` > 0 with
  `raiMediaFilteredReasons`, no samples);
- the sample's URI is downloaded with the same key header (only when it
  points at the API's own host: the key is never sent elsewhere);
- `POST {base}/v1beta/{name}:cancel` (google.longrunning) to cancel.

Google's errors are `{"error": {"code", "message", "status"}}`; a 400 whose
message names safety or the usage guidelines is a `content_policy` refusal.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

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

NAME = "veo"
MODELS = ("veo-3.0-generate-001", "veo-3.0-fast-generate-001")
DURATIONS = (4, 6, 8)
_POLICY_WORDS = ("safety", "usage guidelines", "responsible ai", "blocked")


def _message(body: Any, default: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return default


def _is_policy(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _POLICY_WORDS)


class VeoProvider(ListedProvider):
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
        return {"x-goog-api-key": self._key}

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout(self._timeout)) as session,
                session.request(
                    method, f"{self._base}/v1beta/{path}", headers=self._headers(), **kwargs
                ) as resp,
            ):
                body = await read_json(resp)
                if resp.status >= 400:
                    message = _message(body, resp.reason or "error")
                    raise error_for_status(
                        NAME,
                        resp.status,
                        resp.headers,
                        message,
                        content_policy=resp.status == 400 and _is_policy(message),
                    )
                return body
        except aiohttp.ClientError as exc:
            raise ProviderError("provider_unavailable", f"{NAME}: {exc}") from None

    async def submit(self, spec: GenerationSpec) -> str:
        instance: dict[str, Any] = {"prompt": spec.prompt}
        if spec.image is not None:
            raw = await asyncio.to_thread(spec.image.read_bytes)
            instance["image"] = {
                "bytesBase64Encoded": base64.b64encode(raw).decode(),
                "mimeType": spec.image_content_type or "image/png",
            }
        parameters: dict[str, Any] = {
            "aspectRatio": spec.aspect_ratio,
            "resolution": spec.resolution,
            "durationSeconds": spec.duration_seconds,
        }
        if spec.negative_prompt:
            parameters["negativePrompt"] = spec.negative_prompt
        if spec.seed is not None:
            parameters["seed"] = spec.seed
        body = await self._request(
            "POST",
            f"models/{spec.model}:predictLongRunning",
            json={"instances": [instance], "parameters": parameters},
        )
        if not isinstance(body, dict) or not body.get("name"):
            raise ProviderError("provider_unavailable", f"{NAME}: no operation in the answer")
        return str(body["name"])

    async def _operation(self, task_id: str) -> dict[str, Any]:
        body = await self._request("GET", task_id)
        return body if isinstance(body, dict) else {}

    async def poll(self, task_id: str) -> TaskState:
        op = await self._operation(task_id)
        if not op.get("done"):
            return TaskState("running")
        if isinstance(op.get("error"), dict):
            message = _message(op, "the operation failed")
            if _is_policy(message):
                return TaskState("failed", None, "content_policy", message)
            return TaskState("failed", None, "provider_unavailable", message)
        if self._video_uri(op) is None:
            reasons = _generated(op).get("raiMediaFilteredReasons") or []
            if _generated(op).get("raiMediaFilteredCount") or reasons:
                text = "; ".join(str(r) for r in reasons) or "filtered by the provider"
                return TaskState("failed", None, "content_policy", text)
            return TaskState("failed", None, "provider_unavailable", "no video in the answer")
        return TaskState("succeeded", 100.0)

    async def fetch_result(self, task_id: str) -> AsyncIterator[bytes]:
        uri = self._video_uri(await self._operation(task_id))
        if uri is None:
            raise ProviderError("provider_unavailable", f"{NAME}: the video is gone")
        # The key goes only to the API's own host.
        same_host = urlsplit(uri).netloc == urlsplit(self._base).netloc
        async for chunk in stream_download(
            NAME, uri, headers=self._headers() if same_host else {}, seconds=self._timeout
        ):
            yield chunk

    async def cancel(self, task_id: str) -> None:
        await self._request("POST", f"{task_id}:cancel")

    @staticmethod
    def _video_uri(op: dict[str, Any]) -> str | None:
        samples = _generated(op).get("generatedSamples") or []
        if not samples or not isinstance(samples[0], dict):
            return None
        video = samples[0].get("video")
        uri = video.get("uri") if isinstance(video, dict) else None
        return str(uri) if uri else None


def _generated(op: dict[str, Any]) -> dict[str, Any]:
    response = op.get("response")
    generated = response.get("generateVideoResponse") if isinstance(response, dict) else None
    return generated if isinstance(generated, dict) else {}
