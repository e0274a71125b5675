"""Operations for testing the job engine: real ffmpeg where it matters, no media needed.

- `sleep`: stores a partial output, then runs a real ffmpeg on a lavfi source
  in real time (`-re`) for `seconds`, reporting progress; then stores a result.
- `stall`: runs a real ffmpeg that reads a FIFO nobody ever writes: no progress.
- `ramp`: reports progress 0→100 in many small steps (some going backwards).
- `fail`: stores a partial output, then raises OperationFailed.
- `boom`: raises an unexpected exception.
- `crash`: SIGKILLs its own process when FRAMEFLOW_TEST_CRASH=1 (else succeeds).
- `still`: applies to images only.
- `noop`: returns at once with no output (the queue's own cost, for load tests).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress
from server.jobs.operations.params import invalid
from server.jobs.operations.protocol import Operation, OperationFailed
from server.videos.model import Video

CRASH_ENV = "FRAMEFLOW_TEST_CRASH"


async def store_text(ctx: JobContext, name: str, text: str) -> OutputFile:
    data = text.encode()
    async with ctx.storage.writer(ctx.output_key(name), "text/plain") as writer:
        await writer.write(data)
        await writer.commit()
    return OutputFile(name, ctx.output_key(name), len(data), "text/plain")


def _seconds(raw: Mapping[str, Any], default: float) -> float:
    value = raw.get("seconds", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise invalid("seconds", "must be a number of seconds between 0 and 60")
    return float(value)


@dataclass
class FakeOperation:
    name: str
    kinds: frozenset[str] = frozenset({"video"})

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        unknown = set(raw) - {"seconds"}
        if unknown:
            raise invalid(sorted(unknown)[0], "unknown parameter")
        return {"seconds": _seconds(raw, 2.0)}

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        seconds = float(ctx.job.params.get("seconds", 2.0))
        handler = getattr(self, "_" + self.name)
        outputs: list[OutputFile] = await handler(ctx, seconds)
        return outputs

    async def _sleep(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        partial = await store_text(ctx, "part-1.txt", "partial")
        source = f"testsrc=size=64x48:rate=10:duration={seconds}"
        await run_ffmpeg_with_progress(
            ctx, ["-re", "-f", "lavfi", "-i", source, "-f", "null", "-"], duration=seconds
        )
        return [partial, await store_text(ctx, "result.txt", f"slept {seconds}")]

    async def _stall(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        fifo = ctx.workdir / "never-written"
        os.mkfifo(fifo)
        input_ = ["-protocol_whitelist", "file", "-f", "s16le", "-i", f"file:{fifo}"]
        await run_ffmpeg_with_progress(ctx, [*input_, "-f", "null", "-"], duration=seconds)
        return []

    async def _ramp(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        steps = 200
        for i in range(steps + 1):
            ctx.report_progress(i * 100 / steps)
            ctx.report_progress(max(0.0, i * 100 / steps - 5))  # late, lower: ignored
            await asyncio.sleep(seconds / steps)
        return []

    async def _fail(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        await store_text(ctx, "part-1.txt", "partial")
        raise OperationFailed("fake failure: the input is not what it claims")

    async def _boom(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        raise RuntimeError("a bug, with a secret path /srv/secret")

    async def _crash(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        if os.environ.get(CRASH_ENV) == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return [await store_text(ctx, "survived.txt", "ok")]

    async def _noop(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        return []

    async def _still(self, ctx: JobContext, seconds: float) -> list[OutputFile]:
        return [await store_text(ctx, "still.txt", "image")]


def fake_operations() -> dict[str, Operation]:
    ops: list[Operation] = [
        FakeOperation("sleep"),
        FakeOperation("stall"),
        FakeOperation("ramp"),
        FakeOperation("fail"),
        FakeOperation("boom"),
        FakeOperation("crash"),
        FakeOperation("still", frozenset({"image"})),
        FakeOperation("noop"),
    ]
    return {op.name: op for op in ops}
