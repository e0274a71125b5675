"""Each remote adapter against a local fake speaking its documented shapes:
several polls, a streamed download, cancel, auth failure, 429 with
Retry-After, 5xx, content-policy refusals — then through the whole app: a
restart between submit and completion resumes polling without paying twice,
and `auto` routes around a provider whose circuit opened."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.generations.health import ProviderHealth
from server.generations.providers.base import GenerationSpec, ProviderError, RemoteProvider
from server.generations.providers.kling import KlingProvider
from server.generations.providers.sora import SoraProvider
from server.generations.providers.veo import VeoProvider
from tests.clips import make_image
from tests.conftest import User, register_and_login, truncate_all
from tests.generation_fakes import (
    KLING_ACCESS,
    KLING_SECRET,
    SORA_KEY,
    VEO_KEY,
    Scenario,
    kling_app,
    sora_app,
    veo_app,
)

Client = TestClient[Any, Any]
MakeServer = Callable[[web.Application], Awaitable[TestServer]]
PROVIDERS = ["sora", "veo", "kling"]


def build(name: str, base: str, *, good_key: bool = True) -> RemoteProvider:
    common = {"base_url": base, "price_per_second": 2.0, "timeout_seconds": 10.0}
    if name == "sora":
        return SoraProvider(api_key=SORA_KEY if good_key else "wrong", **common)  # type: ignore[arg-type]
    if name == "veo":
        return VeoProvider(api_key=VEO_KEY if good_key else "wrong", **common)  # type: ignore[arg-type]
    return KlingProvider(
        access_key=KLING_ACCESS,
        secret_key=KLING_SECRET if good_key else "wrong-secret-" + "y" * 20,
        **common,  # type: ignore[arg-type]
    )


FAKES = {"sora": sora_app, "veo": veo_app, "kling": kling_app}


def spec_for(name: str, prompt: str = "a calm sea", image: Path | None = None) -> GenerationSpec:
    provider = build(name, "http://127.0.0.1:1")
    info = provider.info()
    return GenerationSpec(
        prompt=prompt,
        negative_prompt="blur",
        model=provider.default_model(),
        duration_seconds=info.durations[0],
        resolution="720p",
        aspect_ratio="16:9",
        seed=7,
        image=image,
        image_content_type="image/png" if image else None,
    )


@pytest.fixture(params=PROVIDERS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def fake(name: str, aiohttp_server: MakeServer, sample_mp4: Path) -> tuple[Scenario, str]:
    scenario = Scenario(video=sample_mp4)
    server = await aiohttp_server(FAKES[name](scenario))
    return scenario, str(server.make_url("")).rstrip("/")


def health(sleeps: list[float]) -> ProviderHealth:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return ProviderHealth(
        "p", threshold=3, cooldown=60, concurrency=2, retries=3, backoff=0.5, max_backoff=30,
        sleep=sleep,
    )  # fmt: skip


async def test_submit_polls_and_streams_the_result(
    name: str, fake: tuple[Scenario, str], sample_mp4: Path, tmp_path: Path
) -> None:
    scenario, base = fake
    provider = build(name, base)
    image = make_image(tmp_path / "ref.png", "png")
    task_id = await provider.submit(spec_for(name, image=image))
    states = []
    while True:
        state = await provider.poll(task_id)
        states.append(state.status)
        if state.status in ("succeeded", "failed"):
            break
    assert states[-1] == "succeeded" and len(states) == scenario.polls_before_done + 1
    chunks = [c async for c in provider.fetch_result(task_id)]
    assert len(chunks) >= 1 and b"".join(chunks) == sample_mp4.read_bytes()
    # The documented request fields went out.
    sent = scenario.requests[0]
    if name == "sora":
        assert sent["size"] == "1280x720" and sent["seconds"] == "4"
        assert sent["input_reference"] == "<file>"
    elif name == "veo":
        assert sent["parameters"]["aspectRatio"] == "16:9"
        assert sent["parameters"]["negativePrompt"] == "blur"
        assert sent["instances"][0]["image"]["mimeType"] == "image/png"
    else:
        assert sent["kind"] == "image2video" and sent["duration"] == "5"
    await provider.cancel(task_id)
    assert scenario.cancels == (0 if name == "kling" else 1)  # Kling has no cancel


async def test_auth_failure_is_not_retried(name: str, fake: tuple[Scenario, str]) -> None:
    scenario, base = fake
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as caught:
        await health(sleeps).call(
            lambda: build(name, base, good_key=False).submit(spec_for(name)), lambda: None
        )
    assert caught.value.code == "provider_unavailable" and "credentials" in caught.value.message
    assert sleeps == [] and scenario.submits == 0


async def test_429_and_5xx_are_retried_with_backoff(name: str, fake: tuple[Scenario, str]) -> None:
    scenario, base = fake
    busy: Any = {"error": {"code": 429, "message": "Resource exhausted"}}
    if name == "kling":
        busy = {"code": 1302, "message": "rate limit", "request_id": "r"}
    scenario.fail_next = [
        (429, {"Retry-After": "3"}, busy),
        (503, {}, {"error": {"code": 503, "message": "overloaded"}}),
    ]
    sleeps: list[float] = []
    task_id = await health(sleeps).call(
        lambda: build(name, base).submit(spec_for(name)), lambda: None
    )
    assert task_id and scenario.submits == 1
    assert sleeps == [3.0, 1.0]  # Retry-After, then the backoff (0.5 doubled)


async def test_content_policy_refusals(name: str, fake: tuple[Scenario, str]) -> None:
    scenario, base = fake
    provider = build(name, base)
    with pytest.raises(ProviderError) as caught:
        await provider.submit(spec_for(name, prompt="something forbidden"))
    assert caught.value.code == "content_policy"
    # And an output refused after the fact.
    scenario.fail_task = True
    scenario.polls_before_done = 0
    task_id = await provider.submit(spec_for(name))
    state = await provider.poll(task_id)
    assert (state.status, state.error_code) == ("failed", "content_policy")


# --- through the app -------------------------------------------------------------------------


async def _app_client(
    settings: Settings,
    remote: dict[str, RemoteProvider],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> Client:
    return await aiohttp_client(create_app(settings, remote_providers=remote))


async def _wait(client: Client, user: User, gid: str, until: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(60):
        while True:
            body = await (
                await client.get(f"/api/v1/generations/{gid}", headers=user.headers)
            ).json()
            if until(body):
                return body
            await asyncio.sleep(0.05)


async def test_restart_between_submit_and_completion_resumes_polling(
    name: str,
    fake: tuple[Scenario, str],
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    scenario, base = fake
    scenario.hold = True
    settings = make_settings(generation_poll_seconds=0.05)
    first = await _app_client(settings, {name: build(name, base)}, aiohttp_client)
    await truncate_all(first.app)
    user = await register_and_login(first)
    resp = await first.post(
        "/api/v1/generations",
        json={"prompt": "resume me", "provider": name,
              "duration_seconds": spec_for(name).duration_seconds, "resolution": "720p"},
        headers=user.headers,
    )  # fmt: skip
    assert resp.status == 202, await resp.text()
    gid = (await resp.json())["id"]
    await _wait(first, user, gid, lambda g: g["status"] in ("submitted", "running"))
    assert await (await first.get("/api/v1/credits", headers=user.headers)).json() == {
        "balance": 100 - 2 * spec_for(name).duration_seconds,
        "held": 2 * spec_for(name).duration_seconds,
    }
    await first.app[appkeys.RUNNER].stop()  # the worker goes away mid-generation
    polls_before = scenario.polls

    second = await _app_client(settings, {name: build(name, base)}, aiohttp_client)
    async with asyncio.timeout(30):
        while scenario.polls == polls_before:  # noqa: ASYNC110 - the new worker polls the task
            await asyncio.sleep(0.05)
    scenario.hold = False
    done = await _wait(second, user, gid, lambda g: g["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert scenario.submits == 1  # paid once
    cost = 2 * spec_for(name).duration_seconds
    assert done["credits_charged"] == cost
    assert await (await second.get("/api/v1/credits", headers=user.headers)).json() == {
        "balance": 100 - cost,
        "held": 0,
    }
    video = await (
        await second.get(f"/api/v1/videos/{done['video_id']}", headers=user.headers)
    ).json()
    assert video["kind"] == "video" and video["metadata"]["duration"] > 0


@pytest.mark.parametrize("name", ["sora"])
async def test_failures_open_the_circuit_and_auto_routes_around_it(
    name: str,
    fake: tuple[Scenario, str],
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    sample_mp4: Path,
) -> None:
    scenario, base = fake
    settings = make_settings(
        generation_poll_seconds=0.05,
        generation_breaker_threshold=2,
        generation_breaker_cooldown_seconds=0.5,
        generation_retries=1,
        generation_backoff_seconds=0.01,
        generation_local_price_per_second=50,  # dearer than the fake Sora (2/s)
    )
    client = await _app_client(settings, {name: build(name, base)}, aiohttp_client)
    await truncate_all(client.app)
    user = await register_and_login(client)
    body = {"prompt": "route me", "duration_seconds": 4, "resolution": "720p"}

    # Sora is the cheapest: auto picks it. It fails twice (one retry): the circuit opens.
    scenario.fail_next = [(500, {}, {"error": {"message": "boom"}})] * 2
    resp = await client.post("/api/v1/generations", json=body, headers=user.headers)
    first = await resp.json()
    assert first["provider"] == "sora"
    failed = await _wait(client, user, first["id"], lambda g: g["status"] == "failed")
    assert failed["error"]["code"] == "provider_unavailable"
    assert await (await client.get("/api/v1/credits", headers=user.headers)).json() == {
        "balance": 100,
        "held": 0,
    }  # released
    providers = await (await client.get("/api/v1/providers", headers=user.headers)).json()
    circuit = {p["name"]: p["circuit"] for p in providers["items"]}
    assert circuit["sora"] == "open" and circuit["local"] == "closed"
    assert {p["name"]: p["configured"] for p in providers["items"]}["sora"]
    metrics = await (await client.get("/metrics")).text()
    assert 'frameflow_generation_circuit{provider="sora",state="open"} 1.0' in metrics
    assert 'frameflow_generation_circuit{provider="local",state="closed"} 1.0' in metrics

    # Open: auto goes to local (dearer, but healthy).
    body2 = {**body, "duration_seconds": 1}
    resp = await client.post("/api/v1/generations", json=body2, headers=user.headers)
    assert (await resp.json())["provider"] == "local"

    # After the cool-down one trial half-opens it; its success closes it.
    await asyncio.sleep(0.6)
    providers = await (await client.get("/api/v1/providers", headers=user.headers)).json()
    assert {p["name"]: p["circuit"] for p in providers["items"]}["sora"] == "half_open"
    resp = await client.post("/api/v1/generations", json=body, headers=user.headers)
    trial = await resp.json()
    assert trial["provider"] == "sora"
    done = await _wait(client, user, trial["id"], lambda g: g["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    providers = await (await client.get("/api/v1/providers", headers=user.headers)).json()
    assert {p["name"]: p["circuit"] for p in providers["items"]}["sora"] == "closed"


async def test_a_policy_refusal_is_a_clear_failure(
    name: str,
    fake: tuple[Scenario, str],
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    _scenario, base = fake
    client = await _app_client(
        make_settings(generation_poll_seconds=0.05), {name: build(name, base)}, aiohttp_client
    )
    await truncate_all(client.app)
    user = await register_and_login(client)
    resp = await client.post(
        "/api/v1/generations",
        json={"prompt": "a forbidden thing", "provider": name,
              "duration_seconds": spec_for(name).duration_seconds, "resolution": "720p"},
        headers=user.headers,
    )  # fmt: skip
    gid = (await resp.json())["id"]
    done = await _wait(client, user, gid, lambda g: g["status"] == "failed")
    assert done["error"]["code"] == "content_policy"
    assert done["credits_charged"] == 0
    assert (await (await client.get("/api/v1/credits", headers=user.headers)).json())["held"] == 0


def test_spec_helper_matches_each_provider() -> None:
    for n in PROVIDERS:
        s = spec_for(n)
        assert (
            build(n, "http://127.0.0.1:1").info().supports(dataclasses.replace(s, image=None))
            is None
        )


async def test_cancel_mid_generation_releases_credits_and_cancels_remotely(
    name: str,
    fake: tuple[Scenario, str],
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    scenario, base = fake
    scenario.hold = True
    client = await _app_client(
        make_settings(generation_poll_seconds=0.05), {name: build(name, base)}, aiohttp_client
    )
    await truncate_all(client.app)
    user = await register_and_login(client)
    seconds = spec_for(name).duration_seconds
    resp = await client.post(
        "/api/v1/generations",
        json={"prompt": "stop me", "provider": name, "duration_seconds": seconds,
              "resolution": "720p"},
        headers=user.headers,
    )  # fmt: skip
    gid = (await resp.json())["id"]
    await _wait(client, user, gid, lambda g: g["status"] in ("submitted", "running"))
    resp = await client.post(f"/api/v1/generations/{gid}/cancel", headers=user.headers)
    assert resp.status == 202
    done = await _wait(client, user, gid, lambda g: g["status"] not in ("submitted", "running"))
    assert done["status"] == "canceled" and done["credits_charged"] == 0
    assert await (await client.get("/api/v1/credits", headers=user.headers)).json() == {
        "balance": 100,
        "held": 0,
    }
    assert scenario.cancels == (0 if name == "kling" else 1)
    resp = await client.post(f"/api/v1/generations/{gid}/cancel", headers=user.headers)
    assert resp.status == 409
