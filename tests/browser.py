"""Headless Chromium for browser tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download does not work on these machines, so the
system Chromium is launched by path. A missing browser is a failure, not a
skip: `scripts/test` installs it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    path = os.environ.get("FRAMEFLOW_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium not found: run scripts/test (it installs Debian's chromium)")
    return path


# hls.js, the player most web pages use for HLS; scripts/test installs it with npm.
HLSJS = Path(__file__).parent.parent / ".cache" / "npm" / "node_modules" / "hls.js" / "dist"


def hlsjs_path() -> Path:
    path = Path(os.environ.get("FRAMEFLOW_TEST_HLSJS") or HLSJS / "hls.min.js")
    if not path.is_file():
        pytest.fail(f"hls.js not found at {path}: run scripts/test (it installs it with npm)")
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def signed_up_page(
    browser: Browser, url: str, email_prefix: str, password: str
) -> tuple[Page, list[str]]:
    """A 1200x900 page at `url` with a new account made through its form, and the list
    that collects its page errors and console errors (a test asserts it ends empty)."""
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await page.locator("#email").fill(f"{email_prefix}-{uuid.uuid4().hex[:8]}@example.com")
    await page.locator("#password").fill(password)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#app")).to_be_visible()
    return page, problems
