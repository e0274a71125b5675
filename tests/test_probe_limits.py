"""Probing an upload is bounded: in pixels by the setting, and in how many run at once.

Issue 9, item 13: a 16000x16000 PNG of under 1 MB used to be accepted, its
probe decoding a 768 MB frame, because the probe's pixel cap was 268 Mpx
whatever `FRAMEFLOW_MAX_PIXELS` said; and any number of probes could run at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.argv import input_args
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress, source_file
from server.jobs.operations.protocol import OperationFailed
from server.media.pixels import decoder_pixel_limit, limit_input_pixels
from server.media.prober import Prober
from server.media.sandbox import NO_SANDBOX
from server.videos.model import Video
from tests import clips
from tests.conftest import User, leftovers, register_and_login, truncate_all
from tests.op_harness import OpHarness

MiB = 1024 * 1024


class ChildMemory:
    """Samples the ffmpeg processes this test process has started: the peak RSS of any, and
    how many ran at the same time. Only ffmpeg/ffprobe count: the run's long-lived helpers
    (the moto or SeaweedFS server a session fixture started) are children too, and grow
    with the tests that used them before this one."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peak_rss = 0
        self.most_ffmpegs = 0

    def sample(self) -> None:
        ffmpegs = 0
        for child in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "ffmpeg" in child.name() or "ffprobe" in child.name():
                    self.peak_rss = max(self.peak_rss, child.memory_info().rss)
                    ffmpegs += "ffmpeg" in child.name()
        self.most_ffmpegs = max(self.most_ffmpegs, ffmpegs)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[ChildMemory]:
        async def poll() -> None:
            while True:
                self.sample()
                await asyncio.sleep(0.005)

        task = asyncio.create_task(poll())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_huge_picture_is_refused_before_it_is_decoded(
    client: TestClient[Any, Any], user: User, settings: Settings
) -> None:
    png = clips.black_png(16000, 16000)  # 0.7 MB of file, 768 MB of pixels
    assert len(png) < 1 * MiB
    async with ChildMemory().watching() as memory, asyncio.timeout(60):
        resp = await client.put("/api/v1/uploads/bomb.png", data=png, headers=user.headers)
    body = await resp.json()
    assert resp.status == 422, body
    # Pillow's decompression-bomb limit refuses it first; the answer names the limit.
    assert body["error"]["code"] == "image_too_many_pixels"
    assert str(settings.image_max_pixels) in body["error"]["message"]
    # Refused while reading the header: no frame was allocated
    # (decoding it took ~785 MB before).
    assert memory.peak_rss < 150 * MiB, memory.peak_rss
    assert leftovers(client.app) == []


async def test_a_large_picture_within_the_limit_passes(
    client: TestClient[Any, Any], user: User
) -> None:
    # 4000x2000 = 8 Mpx passes the default limit (8K: 33 Mpx).
    png = clips.black_png(4000, 2000)
    resp = await client.put("/api/v1/uploads/wide.png", data=png, headers=user.headers)
    assert resp.status == 201, await resp.text()
    assert client.server.app[appkeys.PROBER].running == 0


async def test_a_lower_setting_applies_to_uploads(
    aiohttp_client: Any, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(max_pixels=1_000_000)))
    await truncate_all(client.server.app)
    user = await register_and_login(client)
    resp = await client.put(
        "/api/v1/uploads/wide.png", data=clips.black_png(4000, 2000), headers=user.headers
    )
    assert resp.status == 422
    assert "more than the 1000000 pixels allowed" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_probes_run_at_most_probe_concurrency_at_once(
    tmp_path: Path, sample_mp4: Path, concurrency: int
) -> None:
    settings = Settings(data_dir=tmp_path, probe_concurrency=concurrency)
    prober = Prober(ffmpeg=clips.ffmpeg_exe(), sandbox=NO_SANDBOX, settings=settings)
    paths = []
    for i in range(6):
        path = tmp_path / f"clip-{i}.mp4"
        path.write_bytes(sample_mp4.read_bytes())
        paths.append(path)
    async with ChildMemory().watching() as watch, asyncio.timeout(60):
        infos = await asyncio.gather(*(prober.probe(p, "mov") for p in paths))
    assert [(i.width, i.height) for i in infos] == [(320, 240)] * 6
    assert 1 <= watch.most_ffmpegs <= concurrency
    assert prober.running == 0


# --- jobs: every input's decoder has the limit too ---------------------------------


def test_limit_input_pixels_goes_before_each_input() -> None:
    args = ["-ss", "1", "-f", "mov", "-i", "file:/a", "-i", "file:/b", "-f", "null", "-"]
    limit = str(decoder_pixel_limit(1_000_000))
    assert limit_input_pixels(args, 1_000_000) == [
        "-ss",
        "1",
        "-f",
        "mov",
        "-max_pixels",
        limit,
        "-i",
        "file:/a",
        "-max_pixels",
        limit,
        "-i",
        "file:/b",
        "-f",
        "null",
        "-",
    ]
    assert 1_000_000 <= decoder_pixel_limit(1_000_000) < 2_000_000


@dataclass
class DecodeAll:
    """An operation that decodes its whole source, as every real one does."""

    name: str = "decode"
    kinds: frozenset[str] = frozenset({"video"})

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return {}

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        async with source_file(ctx) as path:
            args = [*input_args(ctx.video, path), "-f", "null", "-"]
            await run_ffmpeg_with_progress(ctx, args, duration=None)
        return []


async def test_job_decoders_refuse_pictures_over_the_limit(tmp_path: Path) -> None:
    clip = clips.make_clip(tmp_path / "vga.mp4", seconds=1, width=640, height=480)
    async with OpHarness.open(clip, tmp_path) as h:
        assert await h.run(DecodeAll()) == []
        # As if the stream grew past the limit after the part the probe saw.
        h.settings = dataclasses.replace(h.settings, max_pixels=100_000)
        with pytest.raises(OperationFailed, match="640x480, more than the 100000 pixels allowed"):
            await h.run(DecodeAll())
