"""hls.js in Chromium plays a job's HLS to the end although its link expires mid-film.

hls.js is held to a 1 s buffer, so it fetches each 2 s segment as playback
reaches it: the later segments are fetched after the link's 3 s TTL, through
the playback tokens the playlists carry."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.browser import chromium, hlsjs_path
from tests.clips import make_clip
from tests.conftest import User
from tests.test_jobs_e2e import output, start_job, upload, wait_for_job

pytestmark = pytest.mark.browser

TTL = 3
CLIP_SECONDS = 8  # four 2 s segments

PLAY_JS = """
async (url) => {
  const video = document.getElementById('v');
  const hls = new Hls({ maxBufferLength: 1, maxMaxBufferLength: 1, startLevel: 0 });
  const errors = [];
  // Network errors and fatal ones; hls.js also reports (and skips) tiny buffer
  // gaps at the start of a stream as non-fatal media errors.
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal || d.type === Hls.ErrorTypes.NETWORK_ERROR) errors.push(`${d.type}/${d.details}`);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  await new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, resolve));
  await video.play();
  await new Promise((resolve) => {
    video.addEventListener('ended', resolve, { once: true });
    setTimeout(resolve, 30000);
  });
  return { ended: video.ended, currentTime: video.currentTime, errors };
}
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(signed_url_ttl_seconds=TTL, job_poll_seconds=0.2)


async def test_hlsjs_plays_to_the_end_after_the_link_expired(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "film.mp4", seconds=CLIP_SECONDS, fps=10)
    video = await upload(client, user, clip)
    job = await start_job(client, user, video["id"], "hls", segment_seconds=2, preset="ultrafast")
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]

    async with chromium() as browser:
        page = await browser.new_page()
        segments: list[tuple[float, int, str]] = []
        page.on(
            "response",
            lambda r: segments.append((time.time(), r.status, r.url)) if ".ts" in r.url else None,
        )
        await page.set_content('<video id="v" muted></video>')
        await page.add_script_tag(path=str(hlsjs_path()))
        # The link is made now, just before the player gets it: its TTL starts here.
        resp = await client.get(f"/api/v1/jobs/{job['id']}", headers=user.headers)
        issued = time.time()
        master = output(await resp.json(), "hls/master.m3u8")["url"]
        result = await page.evaluate(PLAY_JS, master)

    assert result["errors"] == [] and result["ended"], result
    assert result["currentTime"] == pytest.approx(CLIP_SECONDS, abs=0.5)
    assert [status for _, status, _ in segments] == [200] * len(segments) and len(segments) >= 4
    late = [url for at, _, url in segments if at > issued + TTL + 0.5]
    assert late, f"no segment was fetched after the link expired: {segments}"
