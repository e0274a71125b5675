"""The public player of a share link plays and seeks in a real Chromium, password included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.browser import chromium
from tests.conftest import User

pytestmark = pytest.mark.browser

# The element's state once `event` fires (or `ready` holds); a media error or
# 15 s without the event resolves too, so a broken link fails the assertions.
WAIT_FOR_JS = """
window.video = () => document.getElementById('shared-media');
window.state = () => ({
  error: video().error ? video().error.code : null,
  duration: video().duration,
  currentTime: video().currentTime,
});
window.waitFor = (event, ready) => new Promise(resolve => {
  const v = video();
  if (v.error || (ready && ready(v))) return resolve(state());
  v.addEventListener(event, () => resolve(state()), {once: true});
  v.addEventListener('error', () => resolve(state()), {once: true});
  setTimeout(() => resolve({...state(), error: 'timeout waiting for ' + event}), 15000);
});
// Not a function as the script's value: Playwright would call it (and wait 15 s).
true;
"""


async def make_share(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, **body: Any
) -> str:
    resp = await client.put(
        "/api/v1/uploads/shared.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201
    video = await resp.json()
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares", json=body, headers=user.headers
    )
    assert resp.status == 201
    return str(client.make_url(f"/s/{(await resp.json())['token']}"))


async def play_and_seek(page: Any) -> None:
    await page.wait_for_selector("#shared-media")
    await page.evaluate(WAIT_FOR_JS)  # evaluate, not a script tag: the page CSP forbids inline
    loaded = await page.evaluate("waitFor('loadedmetadata', v => v.readyState >= 1)")
    assert loaded["error"] is None
    assert loaded["duration"] == pytest.approx(2.0, abs=0.2)
    seeked = await page.evaluate(
        "(() => { const p = waitFor('seeked'); video().currentTime = 1.5; return p; })()"
    )
    assert seeked["error"] is None
    assert seeked["currentTime"] == pytest.approx(1.5, abs=0.1)
    played = await page.evaluate(
        """(async () => {
            video().muted = true;
            video().currentTime = 0;
            await video().play();
            await new Promise(r => setTimeout(r, 700));
            video().pause();
            return video().currentTime;
        })()"""
    )
    assert played > 0.2


async def test_shared_video_plays_and_seeks(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    url = await make_share(client, user, sample_mp4)
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url)
        await play_and_seek(page)
        assert await page.text_content("#share-view h1") == "shared.mp4"
        assert errors == []
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/s/{token}/m/{grant}/video",status="206"' in metrics


async def test_password_form_then_playback(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    url = await make_share(client, user, sample_mp4, password="open sesame")
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url)
        await page.fill("#share-password", "not it at all")
        await page.click("#share-unlock button[type=submit]")
        # A selector, not wait_for_function: polling a JS string is eval, which the CSP forbids.
        await page.wait_for_selector("#share-error:has-text('Wrong password.')")
        assert await page.text_content("#share-error") == "Wrong password."
        await page.fill("#share-password", "open sesame")
        await page.click("#share-unlock button[type=submit]")
        await play_and_seek(page)
        assert errors == []


async def test_revoked_link_is_the_not_found_page(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    url = await make_share(client, user, sample_mp4)
    token = url.rsplit("/", 1)[-1]
    async with chromium() as browser:
        page = await browser.new_page()
        response = await page.goto(url.replace(token, "B" * 32))
        assert response is not None and response.status == 404
        assert "does not exist" in (await page.text_content("h1") or "")
