"""The page's Images panel in Chromium: an uploaded photo shows as its thumbnail
(a signed URL that the browser really loads), apart from the videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image
from playwright.async_api import expect

from tests.browser import chromium, signed_up_page
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


async def test_an_uploaded_image_shows_in_the_images_panel(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    photo = tmp_path / "harbour.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    Image.new("RGB", (1200, 600), (30, 90, 200)).save(photo, exif=exif.tobytes())
    async with chromium() as browser:
        page, problems = await signed_up_page(browser, str(client.make_url("/")), "img", PASSWORD)
        await expect(page.locator("#images-empty")).to_be_visible()

        await page.set_input_files("#file-input", str(photo))
        await expect(page.locator("li.upload")).to_have_attribute(
            "data-state", "done", timeout=20_000
        )
        item = page.locator("button.image-item")
        await expect(item).to_have_count(1)
        await expect(page.locator("#images-empty")).to_be_hidden()
        await expect(item).to_contain_text("1200\u00d7600")
        await expect(item).to_contain_text("Canon EOS R5")
        thumb = item.locator("img")
        await expect(thumb).to_have_attribute("alt", "harbour.jpg")
        # The browser fetched the signed thumbnail: 512x256, the image's aspect.
        # A lazy image loads once on screen (the video grid above may push it below the fold).
        # A function, not an expression: polling an expression needs eval, which the CSP refuses.
        await item.scroll_into_view_if_needed()
        await page.wait_for_function(
            "() => document.querySelector('button.image-item img').naturalWidth > 0"
        )
        size = await thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert size == [512, 256]

        await item.click()
        await expect(page.locator("#player")).to_be_visible()
        await expect(page.locator("#player-title")).to_have_text("harbour.jpg")
        assert problems == []
