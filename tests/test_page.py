"""The browser page end to end: Chromium (tests/browser.py) against the live app.

One run through what a person does: create an account with the form, upload
a clip through the file input with "frames" ticked, watch the upload and then
the job reach 100%, download the frames ZIP from its link, play and seek the
video, reload (the session survives), log out — with no console error or
page error on the way, and no horizontal overflow at 360 px.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import ConsoleMessage, Page, Route, expect

from config.settings import Settings
from server.app import create_app
from server.jobs.operations import registry
from tests.browser import chromium
from tests.conftest import PASSWORD, register_and_login, truncate_all

pytestmark = pytest.mark.browser

SCREENSHOT_DIR = Path("/tmp")
WS_PATH = "/api/v1/ws"

# Seeks the page's <video> and resolves with its state once 'seeked' fires
# (or an error, or 15 s), so a broken player fails the assertion, not a hang.
SEEK_JS = """
async (to) => {
  const v = document.querySelector('#player video');
  if (v.readyState < 1) {
    await new Promise((resolve) => {
      v.addEventListener('loadedmetadata', resolve, {once: true});
      v.addEventListener('error', resolve, {once: true});
      setTimeout(resolve, 15000);
    });
  }
  if (v.error) return {error: v.error.code};
  const seeked = new Promise((resolve) => {
    v.addEventListener('seeked', () => resolve('seeked'), {once: true});
    setTimeout(() => resolve('timeout'), 15000);
  });
  v.currentTime = to;
  return {event: await seeked, currentTime: v.currentTime, duration: v.duration, error: null};
}
"""


def _has_websocket_route(client: TestClient[Any, Any]) -> bool:
    return any(
        getattr(route.resource, "canonical", None) == WS_PATH
        for route in client.app.router.routes()
    )


def _collect_problems(page: Page, ws_exists: bool, allowed: tuple[str, ...] = ()) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Until the WebSocket endpoint exists the page falls back to polling;
        # the browser logs the failed handshake itself. Nothing else is excused.
        if not ws_exists and WS_PATH in message.text:
            return
        # Requests a test makes fail on purpose are logged by the browser too.
        if any(text in message.text for text in allowed):
            return
        problems.append(f"console.error: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return problems


async def test_page_upload_process_download_play(
    client: TestClient[Any, Any], sample_mp4: Path
) -> None:
    ws_exists = _has_websocket_route(client)
    email = f"page-{uuid.uuid4().hex[:8]}@example.com"

    async with chromium() as browser:
        context = await browser.new_context(
            accept_downloads=True, viewport={"width": 1200, "height": 900}
        )
        page = await context.new_page()
        problems = _collect_problems(page, ws_exists)
        response = await page.goto(str(client.make_url("/")))
        assert response is not None and response.ok
        assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]

        # Create an account with the form; that logs in too.
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()
        await expect(page.locator("#user-email")).to_have_text(email)

        # Upload through the file input with "frames" ticked (fps 1: ?process=).
        await page.get_by_label("Frames as a ZIP").check()
        await page.set_input_files("#file-input", str(sample_mp4))
        upload = page.locator("li.upload")
        await expect(upload).to_have_attribute("data-state", "done", timeout=20_000)
        assert await upload.locator("progress").evaluate("p => p.value") == 100
        await expect(upload.locator(".upload-status")).to_have_text("Uploaded")

        # The job reaches 100% and "succeeded", with its ZIP link.
        job = page.locator("li.job")
        await expect(job).to_have_count(1)
        await expect(job.locator(".badge")).to_have_text("succeeded", timeout=30_000)
        await expect(job.locator(".percent")).to_have_text("100%")
        assert await job.locator("progress").evaluate("p => p.value") == 100
        live = await page.evaluate("({...document.documentElement.dataset})")
        if ws_exists:
            # Progress came over the socket, not the polling fallback.
            assert live.get("live") == "ws", live
            assert int(live.get("wsEvents", "0")) > 0, live
        else:
            assert live.get("live") == "polling", live

        zip_link = job.get_by_role("link", name="frames.zip")
        async with page.expect_download() as download_info:
            await zip_link.click()
        download = await download_info.value
        assert download.suggested_filename == "frames.zip"
        with zipfile.ZipFile(io.BytesIO(Path(await download.path()).read_bytes())) as archive:
            assert archive.testzip() is None
            frames = [n for n in archive.namelist() if n.startswith("frame_")]
        assert 2 <= len(frames) <= 3, frames  # 2 s at 1 fps

        # The video view: the player seeks, the output is listed there too.
        await page.locator("#videos button", has_text=sample_mp4.name).click()
        player = page.locator("#player")
        await expect(player.get_by_role("heading", name=sample_mp4.name)).to_be_visible()
        await expect(player.get_by_role("link", name="frames.zip")).to_be_visible()
        seek = await page.evaluate(SEEK_JS, 1.5)
        assert seek["error"] is None and seek["event"] == "seeked", seek
        assert seek["currentTime"] == pytest.approx(1.5, abs=0.1)
        assert seek["duration"] == pytest.approx(2.0, abs=0.2)
        # The quota bar counts the upload (it is refreshed after each change).
        await page.wait_for_function(
            "n => document.querySelector('#quota').value >= n", arg=sample_mp4.stat().st_size
        )

        # An operation run later from the video view: its thumbnail shows up there.
        await player.get_by_label("Operation", exact=True).select_option("thumbnail")
        await player.get_by_role("button", name="Run").click()
        thumb_job = page.locator("li.job", has_text="thumbnail")
        await expect(thumb_job.locator(".badge")).to_have_text("succeeded", timeout=30_000)
        thumb = player.get_by_role("img", name=f"Thumbnail of {sample_mp4.name}")
        await expect(thumb).to_be_visible()
        await page.wait_for_function(
            "() => document.querySelector('#player img.thumb').naturalWidth > 0"
        )

        await page.screenshot(path=str(SCREENSHOT_DIR / "frameflow-page-wide.png"), full_page=True)

        # A phone-sized window: nothing sticks out sideways.
        await page.set_viewport_size({"width": 360, "height": 800})
        await page.wait_for_timeout(100)
        width = await page.evaluate("document.documentElement.scrollWidth")
        await page.screenshot(path=str(SCREENSHOT_DIR / "frameflow-page-360.png"), full_page=True)
        assert width <= 360, f"horizontal overflow at 360 px: scrollWidth {width}"

        # A reload keeps the session (refresh token in sessionStorage)...
        await page.reload()
        await expect(page.locator("#app")).to_be_visible()
        await expect(page.locator("#videos button", has_text=sample_mp4.name)).to_be_visible()
        await expect(page.locator("li.job .badge")).to_have_text(["succeeded", "succeeded"])
        # ...and logging out ends it.
        await page.get_by_role("button", name="Log out").click()
        await expect(page.locator("#auth")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0

        await context.close()
        assert problems == []


async def test_page_errors_cancels_refresh_and_delete(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    sample_mp4: Path,
    tmp_path: Path,
) -> None:
    # No workers: jobs stay queued, so there is time to cancel one. Access
    # tokens live 4 s, so the page has to refresh them while it is used.
    app = create_app(make_settings(workers_enabled=False, access_token_ttl_seconds=4))
    client = await aiohttp_client(app)
    await truncate_all(app)
    ws_exists = _has_websocket_route(client)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n" * 100)

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        problems = _collect_problems(page, ws_exists, allowed=("status of 415",))
        refreshes: list[str] = []
        unauthorized: list[str] = []
        page.on(
            "request",
            lambda r: refreshes.append(r.url) if r.url.endswith("/auth/refresh") else None,
        )
        page.on("response", lambda r: unauthorized.append(r.url) if r.status == 401 else None)
        await page.goto(str(client.make_url("/")))
        await page.get_by_label("Email").fill(f"page-{uuid.uuid4().hex[:8]}@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")  # "Log in": no such account
        await expect(page.locator("#auth-error")).to_have_text("The email or password is incorrect")
        # That 401 was the point (the browser logs it as an error): start afresh.
        await page.wait_for_timeout(100)
        problems.clear()
        unauthorized.clear()
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()

        # The file picker is reachable with Tab and shows where the focus is.
        for _ in range(30):
            if await page.evaluate("document.activeElement.id") == "file-input":
                break
            await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") == "file-input"
        outline = await page.locator(".file-label").evaluate(
            "l => getComputedStyle(l).outlineStyle"
        )
        assert outline == "solid"

        # A file that is no video: the server's reason, in words, on its row.
        await page.set_input_files("#file-input", str(notes))
        failed = page.locator("li.upload[data-upload='notes.txt']")
        await expect(failed).to_have_attribute("data-state", "failed")
        assert "notes.txt" not in (await failed.locator(".upload-status").inner_text())
        assert len(await failed.locator(".upload-status").inner_text()) > 10

        # A queued job is canceled from its row, after the first token expired.
        await page.get_by_label("Frames as a ZIP").check()
        await page.set_input_files("#file-input", str(sample_mp4))
        job = page.locator("li.job")
        await expect(job.locator(".badge")).to_have_text("queued")
        await page.wait_for_timeout(3500)
        await job.get_by_role("button", name="Cancel frames of sample.mp4").click()
        await expect(job.locator(".badge")).to_have_text("canceled")
        await expect(job.locator(".job-message")).to_have_text("Canceled")
        await expect(job.get_by_role("button", name="Cancel frames of sample.mp4")).to_be_hidden()
        assert refreshes, "the expiring access token was not refreshed"
        assert unauthorized == []

        # An upload canceled mid-flight: held at the network layer so that it
        # cannot finish first.
        held: list[Route] = []

        async def hold(route: Route) -> None:
            held.append(route)

        await page.route("**/api/v1/uploads/**", hold)
        await page.set_input_files("#file-input", str(sample_mp4))
        pending = page.locator("li.upload[data-state='uploading']")
        await expect(pending).to_have_count(1)
        await pending.get_by_role("button", name="Cancel upload of sample.mp4").click()
        canceled = page.locator("li.upload[data-state='canceled']")
        await expect(canceled.locator(".upload-status")).to_have_text("Canceled")
        await page.unroute("**/api/v1/uploads/**")
        assert len(held) == 1
        await expect(page.locator("#videos button")).to_have_count(1)

        # Delete (after the confirm dialog): the video, its player and its jobs go.
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.locator("#videos button", has_text="sample.mp4").click()
        await page.get_by_role("button", name="Delete video").click()
        await expect(page.locator("#videos button")).to_have_count(0)
        await expect(page.locator("#player")).to_be_hidden()
        await expect(page.locator("li.job")).to_have_count(0)
        await expect(page.locator("#quota")).to_have_js_property("value", 0)

        assert problems == []


async def test_page_offers_the_servers_operations_with_its_defaults_and_limits(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    sample_mp4: Path,
) -> None:
    """The choices come from GET /api/v1/operations: a lower frame-rate limit shows."""
    app = create_app(make_settings(workers_enabled=False, max_output_fps=12.0))
    client = await aiohttp_client(app)
    await truncate_all(app)

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        problems = _collect_problems(page, _has_websocket_route(client))
        posted: list[Any] = []
        page.on(
            "request",
            lambda r: (
                posted.append(r.post_data_json)
                if r.method == "POST" and r.url.endswith("/jobs")
                else None
            ),
        )
        await page.goto(str(client.make_url("/")))
        await page.get_by_label("Email").fill(f"page-{uuid.uuid4().hex[:8]}@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()

        boxes = page.locator("#upload-form input[name='op']")
        await expect(boxes).to_have_count(len(registry()))
        assert [await b.get_attribute("value") for b in await boxes.all()] == list(registry())
        fps = page.get_by_label("at fps")
        await expect(fps).to_have_value("1")
        await expect(fps).to_have_attribute("max", "12")  # min(30, the setting)
        containers = await page.locator("#convert-container option").all_inner_texts()
        assert containers == ["mp4", "mov", "mkv", "webm", "gif"]
        await expect(page.locator("#convert-container")).to_have_value("mp4")

        # A rate other than the default: the upload carries no ?process=, and
        # the job is posted on its own with that rate.
        await page.get_by_label("Frames as a ZIP").check()
        await fps.fill("2")
        await page.set_input_files("#file-input", str(sample_mp4))
        await expect(page.locator("li.job", has_text="frames")).to_have_count(1)
        assert posted == [{"operation": "frames", "params": {"fps": 2}}]

        # The video view offers the operations that apply to videos, with their params.
        await page.locator("#videos button", has_text=sample_mp4.name).click()
        operation = page.locator("#player").get_by_label("Operation", exact=True)
        names = await operation.locator("option").all_inner_texts()
        assert names == [n for n, op in registry().items() if "video" in op.kinds]
        await operation.select_option("hls")
        segment = page.locator("#player").get_by_label("Segment length (s)")
        await expect(segment).to_have_value("4")
        await expect(segment).to_have_attribute("min", "2")
        await expect(segment).to_have_attribute("max", "10")
        assert problems == []


async def test_player_renews_its_source_link_before_it_expires(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    sample_mp4: Path,
) -> None:
    # Links live 2 s plus the clip's length: the page must swap in a new one while
    # the video is shown, keep its place, and never hit an expired link.
    app = create_app(make_settings(workers_enabled=False, signed_url_ttl_seconds=2))
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client)
    resp = await client.put(
        f"/api/v1/uploads/{sample_mp4.name}", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        problems = _collect_problems(page, _has_websocket_route(client))
        refused: list[str] = []
        page.on(
            "response",
            lambda r: (
                refused.append(f"{r.status} {r.url}")
                if "/content" in r.url and r.status >= 400
                else None
            ),
        )
        await page.goto(str(client.make_url("/")))
        await page.get_by_label("Email").fill(user.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.locator("#videos button", has_text=sample_mp4.name).click()
        seek = await page.evaluate(SEEK_JS, 1.0)
        assert seek["error"] is None and seek["event"] == "seeked", seek
        first = await page.evaluate("document.querySelector('#player video').src")

        await page.wait_for_function(
            "src => document.querySelector('#player video').src !== src", arg=first, timeout=15_000
        )
        # Swapped where it was, and it still seeks once the first link is long gone.
        await page.wait_for_function(
            "() => document.querySelector('#player video').readyState >= 1", timeout=15_000
        )
        kept = await page.evaluate("document.querySelector('#player video').currentTime")
        assert kept == pytest.approx(1.0, abs=0.1)
        await page.wait_for_timeout(2500)
        seek = await page.evaluate(SEEK_JS, 0.5)
        assert seek["error"] is None and seek["event"] == "seeked", seek
        assert refused == []
        assert problems == []
