"""A real `<video>` element plays and seeks a signed content URL (no headers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.browser import chromium
from tests.conftest import User

pytestmark = pytest.mark.browser

# Resolves with the element's state once `event` fires (or `ready` holds
# already); a media error or 15 s without the event resolves too, so a broken
# URL fails the assertions instead of hanging the test.
WAIT_FOR_JS = """
const video = () => document.getElementById('v');
const state = () => ({
  error: video().error ? video().error.code : null,
  duration: video().duration,
  currentTime: video().currentTime,
});
function waitFor(event, ready) {
  return new Promise(resolve => {
    const v = video();
    if (v.error || (ready && ready(v))) return resolve(state());
    v.addEventListener(event, () => resolve(state()), {once: true});
    v.addEventListener('error', () => resolve(state()), {once: true});
    setTimeout(() => resolve({...state(), error: 'timeout waiting for ' + event}), 15000);
  });
}
"""


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_video_element_plays_and_seeks_signed_url(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    resp = await client.put(
        "/api/v1/uploads/p.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201
    video = await resp.json()
    resp = await client.get(f"/api/v1/videos/{video['id']}/content-url", headers=user.headers)
    url = (await resp.json())["url"]

    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.set_content(f'<video id="v" src="{url}" muted preload="auto"></video>')
        await page.add_script_tag(content=WAIT_FOR_JS)
        duration = await page.evaluate("waitFor('loadedmetadata', v => v.readyState >= 1)")
        assert duration["error"] is None
        assert duration["duration"] == pytest.approx(2.0, abs=0.2)
        seeked = await page.evaluate(
            "(() => { const p = waitFor('seeked'); video().currentTime = 1.5; return p; })()"
        )
        assert seeked["error"] is None
        assert seeked["currentTime"] == pytest.approx(1.5, abs=0.1)
        played = await page.evaluate(
            """(async () => {
                video().currentTime = 0;
                await video().play();
                await new Promise(r => setTimeout(r, 700));
                video().pause();
                return video().currentTime;
            })()"""
        )
        assert played > 0.2
        assert errors == []

    # The browser fetched with Range requests the server answered with 206.
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/api/v1/videos/{id}/content",status="206"' in metrics
