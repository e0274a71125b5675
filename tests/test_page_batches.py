"""The library grid in Chromium: thumbnails appear on the cards as the automatic
thumbnail jobs finish, two videos are selected and a batch runs on them (its counts
reach succeeded; a refused batch says that nothing was queued; "Cancel all" stops a
queued one), and a preset is made, used at upload (its job runs) and deleted — with no
console or page error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from config.settings import Settings
from server.app import create_app
from tests.browser import chromium, signed_up_page
from tests.clips import make_clip
from tests.conftest import PASSWORD, truncate_all

pytestmark = pytest.mark.browser

# Hang guards, not timings: jobs run on a shared, noisy machine.
JOB_WAIT_MS = 45_000


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # On, as by default: each upload gets its thumbnail job (the shared settings turn it off).
    return make_settings(thumbnail_after_upload=True)


async def test_grid_batch_and_presets_in_the_page(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    clips = [make_clip(tmp_path / f"{name}.mp4", seconds=1, audio=False) for name in "abc"]
    async with chromium() as browser:
        page, problems = await signed_up_page(browser, str(client.make_url("/")), "grid", PASSWORD)

        # Two uploads: cards first with a placeholder, then the automatic thumbnails.
        await page.set_input_files("#file-input", [str(c) for c in clips[:2]])
        cards = page.locator("li.video-card")
        await expect(cards).to_have_count(2, timeout=20_000)
        await expect(page.locator('li.video-card[data-thumbnail="yes"]')).to_have_count(
            2, timeout=JOB_WAIT_MS
        )
        # Lazy images load once on screen; then both are real pictures.
        await page.locator("#videos").scroll_into_view_if_needed()
        await page.wait_for_function(
            "() => [...document.querySelectorAll('img.card-thumb')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length === 2",
            timeout=JOB_WAIT_MS,
        )

        # The list view is a toggle away, and back.
        await page.get_by_role("button", name="List view").click()
        await expect(page.locator("#videos")).to_have_class("videos videos-list")
        await page.get_by_role("button", name="List view").click()
        await expect(page.locator("#videos")).to_have_class("videos")

        # Select both (one by its checkbox, then all on the page).
        await page.get_by_label("Select a.mp4", exact=True).check()
        await expect(page.locator("#selection-count")).to_have_text("1 selected")
        await page.get_by_role("button", name="Select all on page").click()
        await expect(page.locator("#selection-count")).to_have_text("2 selected")

        # A refused batch (fps out of bounds): nothing queued, said in the dialog.
        dialog = page.locator("#batch-dialog")
        await page.get_by_role("button", name="Run operations on selected…").click()
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("frames", exact=True).check()
        await dialog.get_by_label("Frames per second").fill("100000")
        await dialog.get_by_role("button", name="Run batch").click()
        await expect(dialog.get_by_role("alert")).to_contain_text("Nothing was queued")
        await expect(page.locator("li.batch")).to_have_count(0)

        # A valid one: a thumbnail at 0.5 s for both; its counts reach succeeded.
        await dialog.get_by_label("frames", exact=True).uncheck()
        await dialog.get_by_label("thumbnail", exact=True).check()
        await dialog.get_by_label("At second").fill("0.5")
        await dialog.get_by_role("button", name="Run batch").click()
        await expect(dialog).to_be_hidden()
        batch = page.locator("li.batch")
        await expect(batch).to_have_attribute("data-done", "true", timeout=JOB_WAIT_MS)
        await expect(batch.locator(".batch-counts")).to_contain_text("succeeded 2")
        await expect(batch.locator(".batch-counts")).to_contain_text("failed 0")
        await page.get_by_role("button", name="Clear selection").click()
        await expect(page.locator("#selection-count")).to_have_text("0 selected")
        await expect(page.locator(".card-select:checked")).to_have_count(0)

        # A preset: saved from the presets panel, offered at upload, its job runs.
        panel = page.locator("#presets-panel")
        await panel.get_by_label("frames", exact=True).check()
        await panel.get_by_label("Frames per second").fill("1")
        await panel.get_by_label("Preset name").fill("stills")
        await panel.get_by_role("button", name="Save preset").click()
        await expect(panel.locator('li.preset[data-preset="stills"]')).to_contain_text("fps 1")
        await page.locator("#upload-preset").select_option("stills")
        await page.set_input_files("#file-input", str(clips[2]))
        frames_job = page.locator("li.job", has=page.locator("strong", has_text="frames"))
        await expect(frames_job).to_have_attribute("data-status", "succeeded", timeout=JOB_WAIT_MS)
        await expect(frames_job.locator(".job-video")).to_have_text("c.mp4")

        # Deleted: gone from the panel and from the upload form's choices.
        await panel.get_by_role("button", name="Delete preset stills").click()
        await expect(panel.locator("li.preset")).to_have_count(0)
        await expect(page.locator("#upload-preset option")).to_have_count(1)
        # The one error Chromium logs is the refused batch's 400, asked for above.
        refused = [p for p in problems if "status of 400" in p]
        assert len(refused) == 1
        assert [p for p in problems if p not in refused] == []


async def test_cancel_all_stops_a_queued_batch(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> None:
    # No workers: the jobs stay queued until "Cancel all", and the cards keep their placeholder.
    app = create_app(make_settings(workers_enabled=False, thumbnail_after_upload=True))
    client = await aiohttp_client(app)
    await truncate_all(app)
    clips = [make_clip(tmp_path / f"{name}.mp4", seconds=1, audio=False) for name in "de"]
    async with chromium() as browser:
        page, problems = await signed_up_page(
            browser, str(client.make_url("/")), "cancel", PASSWORD
        )
        await page.set_input_files("#file-input", [str(c) for c in clips])
        await expect(page.locator("li.video-card")).to_have_count(2, timeout=20_000)
        await expect(page.locator(".card-thumb.placeholder")).to_have_count(2)
        await page.get_by_role("button", name="Select all on page").click()
        await page.get_by_role("button", name="Run operations on selected…").click()
        dialog = page.locator("#batch-dialog")
        await dialog.get_by_label("frames", exact=True).check()
        await dialog.get_by_role("button", name="Run batch").click()
        batch = page.locator("li.batch")
        await expect(batch.locator(".batch-counts")).to_contain_text("queued 2")
        await batch.get_by_role("button", name="Cancel all").click()
        await expect(batch).to_have_attribute("data-done", "true")
        await expect(batch.locator(".batch-counts")).to_contain_text("canceled 2")
        await expect(batch.get_by_role("button", name="Cancel all")).to_be_hidden()
        assert problems == []
