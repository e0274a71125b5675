"""Local fake servers speaking each provider's documented request and response
shapes (see the adapters' docstrings), with knobs for the failures tests need.

`Scenario` drives them: answers queued for the next calls (`fail_next`), the
number of polls before a task is done, a policy refusal, and counters of
what was called. Everything listens on loopback only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web


@dataclass
class Scenario:
    video: Path  # the MP4 the fake "generates"
    polls_before_done: int = 2
    # Answers for the next calls, whatever they are: (status, headers, body).
    fail_next: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    refuse_prompt: str = "forbidden"  # a prompt containing it is a policy refusal
    fail_task: bool = False  # the task itself fails (not the call)
    hold: bool = False  # polls say "still working" while set
    submits: int = 0
    polls: int = 0
    cancels: int = 0
    downloads: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, int] = field(default_factory=dict)  # task id → polls seen

    def next_failure(self) -> web.Response | None:
        if not self.fail_next:
            return None
        status, headers, body = self.fail_next.pop(0)
        return web.json_response(body, status=status, headers=headers)

    def advance(self, task_id: str) -> bool:
        """One poll of `task_id`; True once it is done."""
        self.polls += 1
        self.tasks[task_id] = self.tasks.get(task_id, 0) + 1
        return not self.hold and self.tasks[task_id] > self.polls_before_done


async def _stream(request: web.Request, scenario: Scenario) -> web.StreamResponse:
    scenario.downloads += 1
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    await resp.prepare(request)
    with scenario.video.open("rb") as f:
        while chunk := f.read(16 * 1024):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


# --- OpenAI Videos API (Sora) ------------------------------------------------------------------

SORA_KEY = "sk-test"


def sora_app(scenario: Scenario) -> web.Application:
    def auth(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {SORA_KEY}":
            return web.json_response(
                {"error": {"message": "Incorrect API key", "type": "invalid_request_error",
                           "code": "invalid_api_key"}},
                status=401,
            )  # fmt: skip
        return scenario.next_failure()

    async def create(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        form = await request.post()
        fields = {k: (v if isinstance(v, str) else "<file>") for k, v in form.items()}
        scenario.requests.append(fields)
        if scenario.refuse_prompt in str(form.get("prompt")):
            return web.json_response(
                {"error": {"message": "Your request was blocked by our moderation system.",
                           "type": "invalid_request_error", "code": "moderation_blocked"}},
                status=400,
            )  # fmt: skip
        scenario.submits += 1
        video_id = f"video_{scenario.submits}"
        return web.json_response(
            {"id": video_id, "object": "video", "model": form.get("model"), "status": "queued",
             "progress": 0, "seconds": form.get("seconds"), "size": form.get("size")}
        )  # fmt: skip

    async def status(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        video_id = request.match_info["id"]
        done = scenario.advance(video_id)
        if scenario.fail_task:
            return web.json_response(
                {"id": video_id, "status": "failed", "progress": 40,
                 "error": {"code": "moderation_blocked", "message": "blocked output"}}
            )  # fmt: skip
        if done:
            return web.json_response({"id": video_id, "status": "completed", "progress": 100})
        return web.json_response(
            {"id": video_id, "status": "in_progress", "progress": min(90, 30 * scenario.polls)}
        )

    async def content(request: web.Request) -> web.StreamResponse:
        if (refused := auth(request)) is not None:
            return refused
        return await _stream(request, scenario)

    async def delete(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        scenario.cancels += 1
        return web.json_response({"id": request.match_info["id"], "deleted": True})

    app = web.Application()
    app.router.add_post("/v1/videos", create)
    app.router.add_get("/v1/videos/{id}", status)
    app.router.add_delete("/v1/videos/{id}", delete)
    app.router.add_get("/v1/videos/{id}/content", content)
    return app


# --- Gemini API long-running operations (Veo) ------------------------------------------------

VEO_KEY = "AIza-test"


def veo_app(scenario: Scenario) -> web.Application:
    def auth(request: web.Request) -> web.Response | None:
        if request.headers.get("x-goog-api-key") != VEO_KEY:
            return web.json_response(
                {"error": {"code": 403, "message": "API key not valid.",
                           "status": "PERMISSION_DENIED"}},
                status=403,
            )  # fmt: skip
        return scenario.next_failure()

    async def predict(request: web.Request, model: str) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        body = await request.json()
        scenario.requests.append(body)
        prompt = body["instances"][0]["prompt"]
        if scenario.refuse_prompt in prompt:
            return web.json_response(
                {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                           "message": "The prompt could not be submitted. This prompt contains "
                                      "words that violate Gemini API's usage guidelines."}},
                status=400,
            )  # fmt: skip
        scenario.submits += 1
        return web.json_response({"name": f"models/{model}/operations/op{scenario.submits}"})

    async def operation(request: web.Request, name: str) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        done = scenario.advance(name)
        if not done:
            return web.json_response({"name": name})
        if scenario.fail_task:
            gen = {"raiMediaFilteredCount": 1,
                   "raiMediaFilteredReasons": ["The video was filtered for safety."]}  # fmt: skip
        else:
            uri = str(request.url.with_path(f"/v1beta/files/{name.rsplit('/', 1)[-1]}:download")
                      .with_query(alt="media"))  # fmt: skip
            gen = {"generatedSamples": [{"video": {"uri": uri}}]}
        return web.json_response(
            {"name": name, "done": True, "response": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
                         "PredictLongRunningResponse",
                "generateVideoResponse": gen}}
        )  # fmt: skip

    async def cancel(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        scenario.cancels += 1
        return web.json_response({})

    async def download(request: web.Request) -> web.StreamResponse:
        if (refused := auth(request)) is not None:
            return refused
        return await _stream(request, scenario)

    async def dispatch_get(request: web.Request) -> web.StreamResponse:
        if request.match_info["rest"].startswith("files/"):
            return await download(request)
        return await operation(request, request.match_info["rest"])

    async def dispatch_post(request: web.Request) -> web.Response:
        rest = request.match_info["rest"]
        if rest.endswith(":predictLongRunning"):
            return await predict(request, rest.removeprefix("models/").split(":")[0])
        if rest.endswith(":cancel"):
            return await cancel(request)
        return web.json_response({"error": {"code": 404, "message": "not found"}}, status=404)

    app = web.Application()
    app.router.add_get("/v1beta/{rest:.+}", dispatch_get)
    app.router.add_post("/v1beta/{rest:.+}", dispatch_post)
    return app


# --- Kling ---------------------------------------------------------------------------------------

KLING_ACCESS, KLING_SECRET = "ak-test", "sk-kling-secret-" + "x" * 16


def kling_app(scenario: Scenario) -> web.Application:
    def auth(request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, KLING_SECRET, algorithms=["HS256"])
            assert claims["iss"] == KLING_ACCESS
        except (jwt.PyJWTError, AssertionError, KeyError):
            return web.json_response(
                {"code": 1004, "message": "Authorization signature is invalid",
                 "request_id": "r"},
                status=401,
            )  # fmt: skip
        return scenario.next_failure()

    async def create(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        body = await request.json()
        scenario.requests.append({**body, "kind": request.match_info["kind"]})
        if "image" in body:
            base64.b64decode(body["image"], validate=True)  # plain base64, no data: prefix
        if scenario.refuse_prompt in body.get("prompt", ""):
            return web.json_response(
                {"code": 1301, "message": "Trust & Safety: the content is not allowed",
                 "request_id": "r"},
                status=400,
            )  # fmt: skip
        scenario.submits += 1
        return web.json_response(
            {"code": 0, "message": "SUCCEED", "request_id": "r",
             "data": {"task_id": f"task{scenario.submits}", "task_status": "submitted"}}
        )  # fmt: skip

    async def query(request: web.Request) -> web.Response:
        if (refused := auth(request)) is not None:
            return refused
        task_id = request.match_info["task_id"]
        done = scenario.advance(task_id)
        data: dict[str, Any] = {"task_id": task_id, "task_status": "processing"}
        if done and scenario.fail_task:
            data = {"task_id": task_id, "task_status": "failed",
                    "task_status_msg": "Failure to pass the risk control system"}  # fmt: skip
        elif done:
            url = str(request.url.with_path(f"/media/{task_id}.mp4").with_query(None))
            videos = [{"id": "v1", "url": url, "duration": "5"}]
            data = {"task_id": task_id, "task_status": "succeed", "task_result": {"videos": videos}}
        return web.json_response({"code": 0, "message": "SUCCEED", "request_id": "r", "data": data})

    async def media(request: web.Request) -> web.StreamResponse:
        return await _stream(request, scenario)  # a plain URL: no credentials

    app = web.Application()
    app.router.add_post("/v1/videos/{kind}", create)
    app.router.add_get("/v1/videos/{kind}/{task_id}", query)
    app.router.add_get("/media/{name}", media)
    return app


def dumps(body: Any) -> str:
    return json.dumps(body)
