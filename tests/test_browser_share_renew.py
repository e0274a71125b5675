"""The public player of a password link keeps playing in Chromium past the lifetime of
its first media links (renewed before they expire, position and play state kept), and
a revoked link stops the renewals (POST /s/{token}/renew answers 404) and says so.

With a 3 s link TTL a grant for a 4 s clip lives 7 s, and the player renews it 1.4 s
early, while the clip plays at half speed; it ends (8 s of playback) after the first
grant is dead."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.browser import chromium
from tests.clips import make_clip
from tests.conftest import User
from tests.test_browser_share import WAIT_FOR_JS

pytestmark = pytest.mark.browser

TTL = 3
CLIP_SECONDS = 4
PASSWORD = "open sesame"

# Media events as the page sees them, and the end (or a media error, or a hang guard).
PLAY_JS = """
async () => {
  const events = [];
  const v = video();
  for (const type of ['loadedmetadata', 'seeked', 'emptied']) {
    v.addEventListener(type, () => events.push([type, v.currentTime, v.currentSrc]));
  }
  v.muted = true;
  v.playbackRate = 0.5;
  v.defaultPlaybackRate = 0.5;  // kept across a new source
  await v.play();
  const end = await new Promise(resolve => {
    v.addEventListener('ended', () => resolve('ended'), {once: true});
    setTimeout(() => resolve('timeout'), 40000);
  });
  return {end, events, error: v.error ? v.error.code : null, currentTime: v.currentTime,
          src: v.currentSrc};
}
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(signed_url_ttl_seconds=TTL)


def grant_of(url: str) -> str:
    return urlsplit(url).path.split("/")[4]  # /s/{token}/m/{grant}/...


@pytest.fixture
async def shared(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> tuple[str, dict[str, Any]]:
    """A 4 s clip's link with a password: its page URL and the share."""
    clip = make_clip(tmp_path / "film.mp4", seconds=CLIP_SECONDS, fps=10)
    resp = await client.put(
        "/api/v1/uploads/film.mp4", data=clip.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares", json={"password": PASSWORD}, headers=user.headers
    )
    assert resp.status == 201
    made = await resp.json()
    return str(client.make_url(f"/s/{made['token']}")), made


async def open_unlocked(browser: Any, url: str, seen: list[tuple[float, int, str]]) -> Any:
    """The link's page (the password asked); every answer of the link goes to `seen`."""
    page = await browser.new_page()
    page.on(
        "response",
        lambda r: seen.append((time.time(), r.status, r.url)) if "/s/" in r.url else None,
    )
    await page.goto(url)
    return page


async def unlock(page: Any) -> float:
    """Give the password; the time its first grant was minted (about)."""
    await page.fill("#share-password", PASSWORD)
    issued = time.time()
    await page.click("#share-unlock button[type=submit]")
    await page.wait_for_selector("#shared-media")
    await page.evaluate(WAIT_FOR_JS)  # evaluate, not a script tag: the page CSP forbids inline
    loaded = await page.evaluate("waitFor('loadedmetadata', v => v.readyState >= 1)")
    assert loaded["error"] is None
    return issued


async def test_the_player_plays_past_its_first_links_lifetime(
    client: TestClient[Any, Any], shared: tuple[str, dict[str, Any]]
) -> None:
    seen: list[tuple[float, int, str]] = []
    async with chromium() as browser:
        page = await open_unlocked(browser, shared[0], seen)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        issued = await unlock(page)
        first = grant_of(await page.evaluate("video().currentSrc"))
        result = await page.evaluate(PLAY_JS)
        ended_at = time.time()

    assert errors == []
    assert result["end"] == "ended" and result["error"] is None, result
    assert result["currentTime"] == pytest.approx(CLIP_SECONDS, abs=0.5)
    lifetime = TTL + CLIP_SECONDS
    assert ended_at > issued + lifetime, "the clip ended before its first links expired"
    # Renewed while playing: a new grant, media fetched under it, and none refused.
    renewals = [status for _, status, u in seen if u.endswith("/renew")]
    assert renewals and set(renewals) == {200}, seen
    second = grant_of(result["src"])
    assert second != first
    media = [(status, u) for _, status, u in seen if "/m/" in u]
    assert all(status in (200, 206) for status, _ in media), media
    assert any(grant_of(u) == second for _, u in media), media
    # It went on from where it was, not from the start.
    resumed = [t for kind, t, src in result["events"] if kind == "seeked" and second in src]
    assert resumed and resumed[0] > 0.5, result["events"]
    # The first links are dead by now: without the renewal the player would have stopped.
    first_video = next(u for _, u in media if grant_of(u) == first)
    assert (await client.get(urlsplit(first_video).path)).status == 404


async def test_a_revoked_link_stops_the_renewals(
    client: TestClient[Any, Any], user: User, shared: tuple[str, dict[str, Any]]
) -> None:
    url, made = shared
    seen: list[tuple[float, int, str]] = []

    def renewals() -> list[int]:
        return [status for _, status, u in seen if u.endswith("/renew")]

    async with chromium() as browser:
        page = await open_unlocked(browser, url, seen)
        await unlock(page)
        before = len(renewals())
        resp = await client.delete(
            f"/api/v1/videos/{made['video_id']}/shares/{made['id']}", headers=user.headers
        )
        assert resp.status == 204
        # At the renewal (or a media request before it) the player learns it is gone.
        await page.wait_for_selector("#share-status", state="visible", timeout=20000)
        assert "revoked" in (await page.text_content("#share-status") or "")
        assert await page.is_hidden("#share-view")
        asked = len(renewals())
        await page.wait_for_timeout((TTL + CLIP_SECONDS) * 1000)  # a whole grant's life
        after = renewals()[before:]
        assert after and set(after) == {404}, seen
        assert len(renewals()) == asked  # none after the 404


async def test_a_grant_that_ran_out_asks_the_password_again_and_resumes_there(
    shared: tuple[str, dict[str, Any]],
) -> None:
    """A tab asleep past its grant: the renewal answers `password_required` (here the
    request carries a spoilt grant), the form is back, and after it the video is where
    it was."""
    seen: list[tuple[float, int, str]] = []
    async with chromium() as browser:
        page = await open_unlocked(browser, shared[0], seen)
        await unlock(page)
        seeked = await page.evaluate(
            "(() => { const p = waitFor('seeked'); video().currentTime = 1.5; return p; })()"
        )
        assert seeked["error"] is None

        async def spoil(route: Any) -> None:
            await route.continue_(post_data='{"grant": "1.spoilt"}')

        await page.route("**/renew", spoil)
        await page.wait_for_selector("#share-unlock", state="visible", timeout=20000)
        assert await page.is_hidden("#share-view")
        await page.unroute("**/renew")
        await unlock(page)
        resumed = await page.evaluate(
            """new Promise(resolve => {
                 const check = () => (video().currentTime > 1 ? resolve(video().currentTime)
                                                              : setTimeout(check, 50));
                 check();
                 setTimeout(() => resolve(video().currentTime), 15000);
               })"""
        )
        assert resumed == pytest.approx(1.5, abs=0.2)
    assert [status for _, status, u in seen if u.endswith("/renew")] == [200]
