"""The page's library parts in Chromium: edit details, search with highlights and
facets, make and revoke a share link — with no console or page error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from tests.browser import chromium, signed_up_page
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


async def test_details_search_and_share_in_the_page(
    client: TestClient[Any, Any], sample_mp4: Path
) -> None:
    async with chromium() as browser:
        page, problems = await signed_up_page(browser, str(client.make_url("/")), "lib", PASSWORD)
        await page.set_input_files("#file-input", str(sample_mp4))
        await expect(page.locator("li.upload")).to_have_attribute(
            "data-state", "done", timeout=20_000
        )

        # Details: a title and tags, saved and shown in the list and the heading.
        await page.locator("button.video-item").first.click()
        await page.locator("#meta-title").fill("Sunset over the harbour")
        await page.locator("#meta-tags").fill("Sea, evening, sea")
        await page.get_by_role("button", name="Save details").click()
        await expect(page.locator("#meta-tags")).to_have_value("sea, evening")
        await expect(page.locator("#player-title")).to_have_text("Sunset over the harbour")
        await expect(page.locator("button.video-item .video-name")).to_have_text(
            "Sunset over the harbour"
        )

        # Search as you type: the match is highlighted, facets show counts.
        await page.locator("#search-q").fill("harb")
        await expect(page.locator("button.video-item mark")).to_have_text("harbour")
        await expect(page.locator("#facet-tags option")).to_have_count(3)  # Any, sea, evening
        await page.locator("#search-q").fill("nothing like it")
        await expect(page.locator("button.video-item")).to_have_count(0)
        await page.locator("#search-q").fill("")
        await page.locator("#search-q").dispatch_event("input")
        await expect(page.locator("button.video-item")).to_have_count(1)

        # A share link: made, listed with its URL, then revoked.
        await page.locator("#share-new-password").fill("open sesame")
        await page.get_by_role("button", name="Create link").click()
        link = page.locator(".share-link input")
        await expect(link).to_have_count(1)
        url = await link.input_value()
        assert "/s/" in url
        await page.locator(".share-link").get_by_role("button", name="Revoke").click()
        await expect(link).to_have_count(0)
        assert (await client.get(url.split(str(client.make_url("")).rstrip("/"))[-1])).status == 404
        assert problems == []
