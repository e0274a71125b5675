"""The Generate panel in Chromium: providers from the API, the estimate and the
balance, a generation with `local` from a prompt and then from an uploaded
image, live progress to "done", the results in the video list."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from config.settings import Settings
from server.app import create_app
from tests.browser import chromium
from tests.clips import make_image
from tests.conftest import PASSWORD, truncate_all
from tests.test_page import _collect_problems, _has_websocket_route

pytestmark = pytest.mark.browser


@pytest.fixture
async def priced_client(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> TestClient[Any, Any]:
    client = await aiohttp_client(create_app(make_settings(generation_local_price_per_second=2)))
    await truncate_all(client.app)
    return client


async def test_generate_with_local_from_a_prompt_and_an_image(
    priced_client: TestClient[Any, Any], tmp_path: Path
) -> None:
    client = priced_client
    image = make_image(tmp_path / "reference.png", "png", width=480, height=360)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 1000})
        problems = _collect_problems(page, _has_websocket_route(client))
        await page.goto(str(client.make_url("/")))
        await page.get_by_label("Email").fill(f"gen-{uuid.uuid4().hex[:8]}@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()

        panel = page.locator("#generate-panel")
        await expect(panel.locator("#gen-credits")).to_have_text("100 credits")
        await expect(panel.locator("#gen-provider option[value=local]")).to_have_count(1)
        await panel.get_by_label("Prompt").fill("A paper boat on a rainy street")
        await panel.get_by_label("Provider").select_option("local")
        await panel.get_by_label("Seconds").select_option("2")
        await panel.get_by_label("Resolution").select_option("360p")
        await panel.get_by_label("Aspect ratio").select_option("16:9")
        await expect(panel.locator("#gen-estimate")).to_have_text("Estimate: 4 credits with local")
        await panel.get_by_role("button", name="Generate").click()

        row = panel.locator("li.generation")
        await expect(row).to_have_count(1)
        await expect(row).to_have_attribute("data-status", "succeeded", timeout=60_000)
        await expect(row.locator(".generation-status")).to_have_text("done — 4 credits")
        await expect(panel.locator("#gen-credits")).to_have_text("96 credits")
        # The result is in the video list (video.ready over the socket).
        await expect(page.locator("#videos li")).to_have_count(1, timeout=20_000)

        # From a new image: upload it in the panel, it becomes the start image.
        await panel.get_by_label("Or upload a new image").set_input_files(str(image))
        await expect(panel.get_by_label("Start from an image")).to_have_value(
            re.compile(r"^[0-9a-f-]{36}$"), timeout=20_000
        )
        await panel.get_by_label("Prompt").fill("Drift over the pattern")
        await panel.get_by_label("Aspect ratio").select_option("9:16")
        await panel.get_by_role("button", name="Generate").click()
        newest = panel.locator("li.generation").first
        await expect(panel.locator("li.generation")).to_have_count(2)
        await expect(newest).to_have_attribute("data-status", "succeeded", timeout=60_000)
        # Two results and the image itself.
        await expect(page.locator("#videos li")).to_have_count(3, timeout=20_000)
        assert problems == []
