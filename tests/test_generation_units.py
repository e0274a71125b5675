"""Pure pieces of generation: the local generator's argv, sizes and text; the
circuit breaker; retries honouring Retry-After; `auto` routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from server.errors import BadRequest, Unprocessable
from server.generations.health import CircuitBreaker, ProviderHealth
from server.generations.providers import local
from server.generations.providers.base import (
    GenerationSpec,
    ProviderError,
    ProviderInfo,
    TaskState,
    credits_for,
)
from server.generations.registry import ProviderRegistry


def spec(**kw: object) -> GenerationSpec:
    values: dict[str, object] = {
        "prompt": "a cat",
        "negative_prompt": None,
        "model": local.MODEL,
        "duration_seconds": 4,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "seed": None,
    }
    values.update(kw)
    return GenerationSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("resolution", "aspect", "size"),
    [
        ("720p", "16:9", (1280, 720)),
        ("720p", "9:16", (720, 1280)),
        ("1080p", "1:1", (1080, 1080)),
        ("480p", "16:9", (854, 480)),
        ("360p", "4:3", (480, 360)),
        ("480p", "3:4", (480, 640)),
    ],
)
def test_frame_size(resolution: str, aspect: str, size: tuple[int, int]) -> None:
    assert local.frame_size(resolution, aspect) == size


def test_pattern_follows_the_seed_else_the_prompt() -> None:
    assert [local.pick_pattern(spec(seed=s)) for s in range(4)] == list(local.PATTERNS)
    assert local.pick_pattern(spec(prompt="x")) == local.pick_pattern(spec(prompt="x"))


def test_procedural_argv_has_no_user_text_in_the_graph(tmp_path: Path) -> None:
    s = spec(prompt="evil', movie=/etc/passwd [x]; %{pts}", seed=0)
    plan = local.plan(s)
    argv = local.local_argv(
        plan,
        output=tmp_path / "o.mp4",
        text_file=tmp_path / "t.txt",
        font_file=Path("/fonts/Sans.ttf"),
    )
    assert argv[:4] == ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24"]
    graph = argv[argv.index("-vf") + 1]
    assert "passwd" not in " ".join(argv)
    assert "expansion=none" in graph and "textfile=" in graph
    assert argv[argv.index("-t") + 1] == "4"
    assert argv[-1] == "file:" + str((tmp_path / "o.mp4").absolute())


def test_image_argv_pins_the_demuxer_and_zooms(tmp_path: Path) -> None:
    image = tmp_path / "in.jpg"
    plan = local.plan(spec(image=image, duration_seconds=2, aspect_ratio="1:1"))
    assert plan.pattern is None
    argv = local.local_argv(plan, output=tmp_path / "o.mp4", image=image, image_demuxer="jpeg_pipe")
    assert argv[:6] == [
        "-protocol_whitelist",
        "file,pipe",
        "-f",
        "jpeg_pipe",
        "-i",
        "file:" + str(image),
    ]
    graph = argv[argv.index("-vf") + 1]
    assert "zoompan=" in graph and ":d=48:s=720x720" in graph and "drawtext" not in graph


def test_filter_values_are_escaped() -> None:
    # Option level: \: and \' ; graph level doubles the backslashes and escapes the quote.
    assert local._escape("/a:b/c'd") == "/a\\\\:b/c\\\\\\'d"


def test_prompt_wraps_to_a_few_lines() -> None:
    text = local.wrap_prompt("word " * 200, 640, 20)
    assert len(text.splitlines()) == local.MAX_TEXT_LINES
    assert text.endswith("…")


def test_credits_round_up() -> None:
    assert credits_for(0, 10) == 0
    assert credits_for(1.5, 3) == 5
    assert credits_for(0.1, 10) == 1


def test_breaker_opens_then_half_opens_for_one_trial() -> None:
    now = [0.0]
    b = CircuitBreaker(threshold=3, cooldown=10, clock=lambda: now[0])
    for _ in range(2):
        b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    now[0] = 10
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # one trial only
    b.record_failure()  # the trial failed: open for another cool-down
    assert b.state == "open"
    now[0] = 20
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow()


async def test_retries_honour_retry_after_and_stop_on_refusals() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    health = ProviderHealth(
        "p", threshold=10, cooldown=60, concurrency=1, retries=3, backoff=1, max_backoff=30,
        sleep=sleep,
    )  # fmt: skip
    answers: list[BaseException | str] = [
        ProviderError("provider_unavailable", "429", retry_after=7),
        ProviderError("provider_unavailable", "503"),
        "ok",
    ]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await health.call(call, lambda: None) == "ok"
    assert slept == [7, 2]  # Retry-After, then the doubled backoff
    answers[:] = [ProviderError("content_policy", "no")]
    with pytest.raises(ProviderError) as caught:
        await health.call(call, lambda: None)
    assert caught.value.code == "content_policy" and slept == [7, 2]
    answers[:] = [ProviderError("provider_unavailable", "x", retry_after=500)] * 4
    with pytest.raises(ProviderError):
        await health.call(call, lambda: None)
    assert slept[2:] == [30, 30, 30]  # capped; then given up


class _Fake:
    def __init__(self, name: str, price: float, configured: bool = True) -> None:
        self.name = name
        self._price = price
        self._configured = configured

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            self.name, ("m",), ("720p",), (4, 8), ("16:9",), False, self._price, self._configured
        )

    def default_model(self) -> str:
        return "m"

    def estimate(self, s: GenerationSpec) -> int:
        return credits_for(self._price, s.duration_seconds)

    async def submit(self, s: GenerationSpec) -> str:
        return "t"

    async def poll(self, task_id: str) -> TaskState:
        return TaskState("succeeded")

    async def fetch_result(self, task_id: str):  # type: ignore[no-untyped-def]
        yield b""

    async def cancel(self, task_id: str) -> None:
        return None


def test_auto_routes_to_the_cheapest_healthy_provider() -> None:
    settings = Settings(generation_breaker_threshold=1)
    registry = ProviderRegistry(
        settings=settings,
        local=local.LocalProvider(price_per_second=5, max_seconds=10),
        remote={
            "cheap": _Fake("cheap", 1),
            "dear": _Fake("dear", 2),
            "unset": _Fake("unset", 0, configured=False),
        },
    )
    s = spec(model="")
    assert registry.choose("auto", None, s)[0].name == "cheap"
    registry.health["cheap"].breaker.record_failure()  # open
    assert registry.choose("auto", None, s)[0].name == "dear"
    # Only local does 1:1 or an image.
    assert registry.choose("auto", None, spec(model="", aspect_ratio="1:1"))[0].name == "local"
    with pytest.raises(Unprocessable):
        registry.choose("unset", None, s)
    with pytest.raises(Unprocessable):
        registry.choose("dear", None, spec(model="", duration_seconds=5))
    with pytest.raises(BadRequest):
        registry.choose("nope", None, s)
    names = [(p.info.name, p.circuit) for p in registry.listing()]
    assert ("cheap", "open") in names and ("local", "closed") in names
