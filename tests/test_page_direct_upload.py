"""A direct upload from a browser page on another origin, with no credentials at all:
the page knows only the one-time URL its backend got from Frameflow. The same URL is
refused a second time, and a URL past its expiry is refused too — and the page can
read why, because the creator's `cors_origin` gets CORS headers on errors as well."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import appkeys
from tests.browser import chromium
from tests.clips import make_clip
from tests.conftest import User
from tests.test_direct_uploads import create_direct

pytestmark = pytest.mark.browser

# The "customer's" page: a file input and a PUT with fetch (no cookies, no token).
PAGE = """<!doctype html>
<html><body>
<input type="file" id="file">
<script>
async function send(url) {
  const file = document.getElementById("file").files[0];
  const resp = await fetch(url, {method: "PUT", body: file, credentials: "omit"});
  return {status: resp.status, body: await resp.json()};
}
</script>
</body></html>"""


TUS_JS = Path(__file__).parent.parent / "static" / "vendor" / "tus-js-client-4.3.1" / "tus.min.js"

# The same page with tus-js-client: chunked, resumable, still without credentials.
TUS_PAGE = """<!doctype html>
<html><body>
<input type="file" id="file">
<script src="/tus.min.js"></script>
<script>
function sendTus(endpoint) {
  const file = document.getElementById("file").files[0];
  return new Promise((resolve) => {
    const upload = new tus.Upload(file, {
      endpoint,
      chunkSize: 100000,
      retryDelays: [],
      metadata: {filename: file.name, filetype: file.type},
      onSuccess: (payload) => resolve({ok: true,
        video: payload.lastResponse.getHeader("Frameflow-Video-Id")}),
      onError: (error) => resolve({ok: false, status: error.originalResponse ?
        error.originalResponse.getStatus() : 0}),
    });
    upload.start();
  });
}
</script>
</body></html>"""


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """Another origin (its own port on loopback) serving the customer's page."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def tus_page(request: web.Request) -> web.Response:
        return web.Response(text=TUS_PAGE, content_type="text/html")

    async def tus_js(request: web.Request) -> web.Response:
        return web.Response(body=TUS_JS.read_bytes(), content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/tus.html", tus_page)
    app.router.add_get("/tus.min.js", tus_js)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_browser_on_another_origin_uploads_once(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, page_origin: str
) -> None:
    created = await create_direct(
        client, user.headers, cors_origin=page_origin, allowed_types=["video/*"]
    )
    expiring = await create_direct(client, user.headers, cors_origin=page_origin)
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE direct_uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
            expiring["id"],
        )
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(page_origin + "/")
        await page.set_input_files("#file", str(sample_mp4))

        first = await page.evaluate("(url) => send(url)", created["url"])
        assert first["status"] == 201, first
        video_id = first["body"]["id"]
        again = await page.evaluate("(url) => send(url)", created["url"])
        assert again["status"] == 410
        assert again["body"]["error"]["code"] == "direct_upload_used"
        late = await page.evaluate("(url) => send(url)", expiring["url"])
        assert late["status"] == 410
        assert late["body"]["error"]["code"] == "direct_upload_expired"
        await context.close()

    resp = await client.get(f"/api/v1/direct-uploads/{created['id']}", headers=user.headers)
    assert (await resp.json())["video_id"] == video_id
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 200  # the creator's video
    assert (await resp.json())["sha256"] == hashlib.sha256(sample_mp4.read_bytes()).hexdigest()


async def test_tus_js_client_on_another_origin_uploads_once(
    client: TestClient[Any, Any], user: User, page_origin: str, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=4, width=480, height=360)  # a few chunks
    created = await create_direct(client, user.headers, cors_origin=page_origin)
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(page_origin + "/tus.html")
        await page.set_input_files("#file", str(clip))
        endpoint = created["url"] + "/tus/"
        first = await page.evaluate("(url) => sendTus(url)", endpoint)
        assert first["ok"], first
        again = await page.evaluate("(url) => sendTus(url)", endpoint)
        assert again == {"ok": False, "status": 410}
        await context.close()
    resp = await client.get(f"/api/v1/direct-uploads/{created['id']}", headers=user.headers)
    shown = await resp.json()
    assert (shown["status"], shown["video_id"]) == ("done", first["video"])
    resp = await client.get(f"/api/v1/videos/{first['video']}", headers=user.headers)
    assert (await resp.json())["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
