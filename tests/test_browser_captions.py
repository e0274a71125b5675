"""Captions in real players: hls.js in Chromium finds the master playlist's SUBTITLES
group and loads its cues; the public player of a share link offers them as a <track>."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.browser import chromium, hlsjs_path
from tests.clips import make_clip
from tests.conftest import User
from tests.test_captions import SRT, add
from tests.test_jobs_e2e import output, start_job, upload, wait_for_job

pytestmark = pytest.mark.browser

HLSJS_SUBTITLES = """
async (url) => {
  const video = document.getElementById('v');
  const hls = new Hls({ subtitleDisplay: true });
  const errors = [];
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) errors.push(`${d.type}/${d.details}`); });
  hls.loadSource(url);
  hls.attachMedia(video);
  await new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, resolve));
  const tracks = hls.subtitleTracks.map((t) => ({ name: t.name, lang: t.lang }));
  hls.subtitleTrack = 0;
  await video.play();
  const cues = await new Promise((resolve) => {
    const started = Date.now();
    const poll = () => {
      const track = [...video.textTracks].find((t) => t.cues && t.cues.length);
      if (track) resolve([...track.cues].map((c) => c.text));
      else if (Date.now() - started > 20000) resolve([]);
      else setTimeout(poll, 100);
    };
    poll();
  });
  return { tracks, cues, errors };
}
"""

SHARE_TRACK = """
async () => {
  const video = document.getElementById('shared-media');
  const started = Date.now();
  while (Date.now() - started < 15000) {
    const track = video.textTracks[0];
    if (track && track.cues && track.cues.length) {
      return { label: track.label, lang: track.language, cues: [...track.cues].map((c) => c.text) };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { tracks: video.textTracks.length, html: video.outerHTML };
}
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(job_poll_seconds=0.2)


async def test_hlsjs_shows_the_subtitles_group_and_the_share_page_a_track(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "film.mp4", seconds=4, fps=10)
    video = await upload(client, user, clip)
    job = await start_job(client, user, video["id"], "hls", segment_seconds=2, preset="ultrafast")
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    resp = await add(client, user, video["id"], SRT.encode(), language="en", label="English")
    assert resp.status == 201
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares",
        json={"exposes": ["video", "hls"]},
        headers=user.headers,
    )
    assert resp.status == 201
    share_url = str(client.make_url(f"/s/{(await resp.json())['token']}"))

    async with chromium() as browser:
        page = await browser.new_page()
        await page.set_content('<video id="v" muted></video>')
        await page.add_script_tag(path=str(hlsjs_path()))
        master = output(job, "hls/master.m3u8")["url"]
        result = await page.evaluate(HLSJS_SUBTITLES, master)
        assert result["errors"] == [], result
        assert result["tracks"] == [{"name": "English", "lang": "en"}]
        assert "Second line &amp; more" in result["cues"] or "Second line & more" in result["cues"]

        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(share_url)
        try:
            await page.wait_for_selector("#shared-media", state="attached", timeout=10000)
        except Exception:
            raise AssertionError((errors, await page.content())) from None
        track = await page.evaluate(SHARE_TRACK)
        assert errors == []
        assert track.get("label") == "English" and track.get("lang") == "en", track
        assert any("Second line" in cue for cue in track["cues"])
