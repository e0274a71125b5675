"""The page sends large files with tus-js-client (vendored) and resumes one after a reload.

Chromium talks to the app through a loopback proxy that slows the upload
down, so the reload lands in the middle of the file; choosing the same file
again after the reload carries on with the same tus upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests.browser import chromium
from tests.clips import make_clip
from tests.conftest import PASSWORD, truncate_all
from tests.tcp_proxy import CuttingProxy
from tests.test_page import _collect_problems, _has_websocket_route

pytestmark = pytest.mark.browser


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> TestClient[Any, Any]:
    app = create_app(make_settings(page_tus_threshold_bytes=100_000))
    test_client = await aiohttp_client(app)
    await truncate_all(app)
    return test_client


@pytest.fixture
async def proxy(client: TestClient[Any, Any]) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(client.server.port or 0)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def tus_rows(app: web.Application) -> list[dict[str, Any]]:
    async with app[appkeys.POOL].acquire() as conn:
        rows = await conn.fetch("SELECT status, upload_offset, video_id FROM tus_uploads")
    return [dict(r) for r in rows]


async def test_page_resumes_a_tus_upload_after_a_reload(
    client: TestClient[Any, Any], proxy: CuttingProxy, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "large.mp4", seconds=8, width=640, height=480)  # ~330 KB
    size = clip.stat().st_size
    email = f"tus-{uuid.uuid4().hex[:8]}@example.com"
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        # The reload cuts the upload's request on purpose; Chromium may log that.
        problems = _collect_problems(page, _has_websocket_route(client), allowed=("/api/v1/tus/",))
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()

        proxy.bytes_per_second = 60_000  # uploads crawl; pages still load at once
        await page.set_input_files("#file-input", str(clip))
        row = page.locator("li.upload")
        await expect(row).to_have_attribute("data-method", "tus")
        await page.wait_for_function(
            "() => document.querySelector('li.upload progress').value >= 25", timeout=20_000
        )
        await page.reload()
        await expect(page.locator("#app")).to_be_visible()  # the session survives
        async with asyncio.timeout(10):
            while True:  # the server kept what arrived before the cut
                rows = await tus_rows(client.app)
                if rows and rows[0]["upload_offset"] > 0:
                    break
                await asyncio.sleep(0.1)
        stopped_at = rows[0]["upload_offset"]
        # At most all of it: a cut that lands while the last chunk is being stored
        # keeps every byte, and the next HEAD completes the upload.
        assert 0 < stopped_at <= size

        proxy.bytes_per_second = None
        await page.set_input_files("#file-input", str(clip))  # the same file again
        row = page.locator("li.upload")
        await expect(row).to_have_attribute("data-state", "done", timeout=30_000)
        await expect(page.locator("#videos button", has_text=clip.name)).to_be_visible()

        rows = await tus_rows(client.app)
        assert [r["status"] for r in rows] == ["completed"]  # one upload, resumed
        async with client.app[appkeys.POOL].acquire() as conn:
            sha256 = await conn.fetchval(
                "SELECT sha256 FROM videos WHERE id = $1", rows[0]["video_id"]
            )
        assert sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
        # The remembered URL is forgotten once the upload succeeded.
        assert (
            await page.evaluate(
                "Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length"
            )
            == 0
        )
        await context.close()
        assert problems == []
