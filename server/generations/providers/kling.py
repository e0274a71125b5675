"""Kling through its REST API, authenticated with a short-lived HS256 JWT.

Follows Kling's API reference (klingai.com "API documentation": video
generation, text to video / image to video) as published for `kling-v2`:

- auth: `Authorization: Bearer <JWT>`; the JWT is HS256 over
  `{"iss": access_key, "exp": now + 1800, "nbf": now - 5}` signed with the
  secret key (made fresh for every call here);
- `POST /v1/videos/text2video` `{model_name, prompt, negative_prompt?,
  duration: "5"|"10", aspect_ratio, mode}` and `POST /v1/videos/image2video`
  (the same plus `image`: base64 without a data: prefix) → `{"code": 0,
  "message", "data": {"task_id", "task_status"}}`;
- `GET /v1/videos/{text2video|image2video}/{task_id}` → `task_status`
  `submitted` | `processing` | `succeed` | `failed` (`task_status_msg`), and
  `task_result.videos[0].url` — downloaded as is (no credentials sent);
- errors carry a business `code`: 1000-1004 auth, 1300-1304 policy/limits
  (1301 is the content-safety refusal; 1302/1303 rate limits), 5000+ server.

Kling documents no cancel: `cancel` is a no-op (the credits held here are
released all the same). The task id kept here is `<kind>:<task_id>` so a
restarted worker polls the right endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt

from server.generations.providers.base import (
    GenerationSpec,
    ProviderError,
    TaskState,
)
from server.generations.providers.http import (
    ListedProvider,
    error_for_status,
    read_json,
    retry_after,
    stream_download,
    timeout,
)

NAME = "kling"
MODELS = ("kling-v2-1", "kling-v2-master")
DURATIONS = (5, 10)
TOKEN_SECONDS = 1800
_POLICY_CODES = {1301}
_LIMIT_CODES = {1302, 1303}


def make_token(access_key: str, secret_key: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return jwt.encode(
        {"iss": access_key, "exp": issued + TOKEN_SECONDS, "nbf": issued - 5},
        secret_key,
        algorithm="HS256",
        headers={"typ": "JWT"},
    )


class KlingProvider(ListedProvider):
    name = NAME
    models = MODELS
    durations = DURATIONS
    aspect_ratios = ("16:9", "9:16", "1:1")

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        base_url: str,
        price_per_second: float,
        timeout_seconds: float,
    ) -> None:
        super().__init__(
            base_url=base_url, price_per_second=price_per_second, timeout_seconds=timeout_seconds
        )
        self._access = access_key
        self._secret = secret_key

    @property
    def configured(self) -> bool:
        return bool(self._access and self._secret)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {make_token(self._access, self._secret)}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout(self._timeout)) as session,
                session.request(method, self._base + path, headers=headers, **kwargs) as resp,
            ):
                body = await read_json(resp)
                data = body if isinstance(body, dict) else {}
                code = data.get("code")
                message = str(data.get("message") or resp.reason or "error")
                if code in _POLICY_CODES:
                    raise ProviderError("content_policy", f"{NAME} refused the request: {message}")
                if code in _LIMIT_CODES:
                    raise ProviderError(
                        "provider_unavailable",
                        f"{NAME} is busy: {message}",
                        retry_after=retry_after(resp.headers),
                    )
                if resp.status >= 400 or (code not in (0, None)):
                    status = resp.status if resp.status >= 400 else 400
                    raise error_for_status(NAME, status, resp.headers, message)
                return data
        except aiohttp.ClientError as exc:
            raise ProviderError("provider_unavailable", f"{NAME}: {exc}") from None

    async def submit(self, spec: GenerationSpec) -> str:
        kind = "image2video" if spec.image is not None else "text2video"
        body: dict[str, Any] = {
            "model_name": spec.model,
            "prompt": spec.prompt,
            "duration": str(spec.duration_seconds),
            "mode": "pro" if spec.resolution == "1080p" else "std",
        }
        if spec.negative_prompt:
            body["negative_prompt"] = spec.negative_prompt
        if spec.image is not None:
            raw = await asyncio.to_thread(spec.image.read_bytes)
            body["image"] = base64.b64encode(raw).decode()
        else:
            body["aspect_ratio"] = spec.aspect_ratio
        answer = await self._request("POST", f"/v1/videos/{kind}", json=body)
        data = answer.get("data")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not task_id:
            raise ProviderError("provider_unavailable", f"{NAME}: no task id in the answer")
        return f"{kind}:{task_id}"

    async def _task(self, task_id: str) -> dict[str, Any]:
        kind, _, remote_id = task_id.partition(":")
        answer = await self._request("GET", f"/v1/videos/{kind}/{remote_id}")
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    async def poll(self, task_id: str) -> TaskState:
        task = await self._task(task_id)
        status = task.get("task_status")
        if status == "succeed":
            return TaskState("succeeded", 100.0)
        if status == "failed":
            message = str(task.get("task_status_msg") or "the task failed")
            lowered = message.lower()
            policy = "risk" in lowered or "safety" in lowered or "sensitive" in lowered
            return TaskState(
                "failed", None, "content_policy" if policy else "provider_unavailable", message
            )
        return TaskState("running" if status == "processing" else "pending")

    async def fetch_result(self, task_id: str) -> AsyncIterator[bytes]:
        task = await self._task(task_id)
        result = task.get("task_result")
        videos = result.get("videos") if isinstance(result, dict) else None
        url = videos[0].get("url") if videos and isinstance(videos[0], dict) else None
        if not url:
            raise ProviderError("provider_unavailable", f"{NAME}: no video URL in the task")
        async for chunk in stream_download(NAME, str(url), headers={}, seconds=self._timeout):
            yield chunk

    async def cancel(self, task_id: str) -> None:
        return None  # not offered by the API
