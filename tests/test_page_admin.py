"""The admin console and "Recent security events" in Chromium against the live app.

An administrator logs in with the form, reads the summary, searches a user and
changes their role and quota, disables them with the keyboard, sees every
user's jobs, filters the audit log; the page has no horizontal overflow at
360 px. A plain user sees their own security events and no console.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from config.settings import Settings
from server import appkeys
from tests.browser import chromium
from tests.conftest import PASSWORD, register_and_login
from tests.test_page import _collect_problems, _has_websocket_route

pytestmark = pytest.mark.browser

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers_enabled=False)


async def log_in(page: Page, client: Client, email: str, password: str) -> None:
    response = await page.goto(str(client.make_url("/")))
    assert response is not None and response.ok
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#app")).to_be_visible()


async def test_admin_console_and_security_events(client: Client, sample_mp4: Path) -> None:
    admin_email = f"admin-{uuid.uuid4().hex[:6]}@example.com"
    await client.app[appkeys.ADMIN].create_admin(admin_email, PASSWORD)
    member = await register_and_login(client, f"member-{uuid.uuid4().hex[:6]}@example.com")
    resp = await client.put(
        "/api/v1/uploads/clip.mp4", data=sample_mp4.read_bytes(), headers=member.headers
    )
    video = (await resp.json())["id"]
    resp = await client.post(
        f"/api/v1/videos/{video}/jobs", json={"operation": "thumbnail"}, headers=member.headers
    )
    assert resp.status == 202
    ws_exists = _has_websocket_route(client)

    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        problems = _collect_problems(page, ws_exists)
        await log_in(page, client, admin_email, PASSWORD)
        console = page.locator("#admin-console")
        await expect(console).to_be_visible()
        await expect(console.get_by_role("heading", name="Administration")).to_be_visible()

        # The summary: two users (admin, user), one video, one queued job.
        summary = page.locator("#admin-summary")
        await expect(summary).to_contain_text("2 (admin 1, user 1; 0 disabled)")
        await expect(summary).to_contain_text("queued 1")

        # Search by part of the email, with Enter in the search box.
        users = console.get_by_role("list", name="Users")
        await expect(users.locator("li.admin-user")).to_have_count(2)
        await page.locator("#admin-user-q").fill("member-")
        await page.locator("#admin-user-q").press("Enter")
        row = users.locator("li.admin-user")
        await expect(row).to_have_count(1)
        await expect(row.locator(".user-email")).to_have_text(member.email)
        await expect(row.locator(".user-status")).to_contain_text("1 videos")

        # Role and quota, saved together.
        await row.get_by_label("Role").select_option("viewer")
        await row.get_by_label("Quota (GB)").fill("2.5")
        await row.get_by_role("button", name="Save").click()
        await expect(row).to_have_attribute("data-role", "viewer")
        resp = await client.get(
            f"/api/v1/admin/users/{member.id}", headers=await admin_headers(client, admin_email)
        )
        body = await resp.json()
        assert (body["role"], body["quota_bytes"]) == ("viewer", 2_500_000_000)

        # Disable with the keyboard alone: focus the button, press Enter.
        await row.get_by_role("button", name="Disable").focus()
        await page.keyboard.press("Enter")
        await expect(row).to_have_attribute("data-disabled", "true")
        await expect(row.get_by_role("button", name="Enable")).to_be_visible()
        resp = await client.get("/api/v1/videos", headers=member.headers)
        assert resp.status == 401

        # Every user's jobs.
        jobs = console.get_by_role("list", name="Jobs of every user")
        await expect(jobs.locator("li.admin-job")).to_have_count(1)
        await expect(jobs.locator("li.admin-job")).to_contain_text(member.id)
        await page.locator("#admin-job-status").select_option("failed")
        await page.locator("#admin-job-operation").press("Enter")
        await expect(jobs.locator("li.admin-job")).to_have_count(0)

        # The audit log, filtered to the changes made to the member.
        audit = console.get_by_role("list", name="Audit log")
        await page.locator("#admin-audit-action").fill("user.")
        await page.locator("#admin-audit-target").fill(member.id)  # not the admin's own row
        await page.locator("#admin-audit-action").press("Enter")
        entries = audit.locator("li.audit-item")
        await expect(entries).to_have_count(3)  # disable, quota, role — newest first
        await expect(entries.nth(0)).to_contain_text("Account disabled")
        await expect(audit).to_contain_text("user → viewer")

        # The admin's own security events: their login.
        events = page.get_by_role("list", name="Security events")
        await expect(events.locator("li").first).to_contain_text("Logged in")

        # 360 px: no horizontal overflow.
        await page.set_viewport_size({"width": 360, "height": 800})
        width = await page.evaluate("document.documentElement.scrollWidth")
        await page.screenshot(path="/tmp/frameflow-admin-360.png", full_page=True)
        assert width <= 360, f"horizontal overflow at 360 px: scrollWidth {width}"
        assert problems == []
        await context.close()

        # A plain user: their security events, no admin console.
        other = await register_and_login(client)
        context = await browser.new_context(viewport={"width": 360, "height": 800})
        page = await context.new_page()
        problems = _collect_problems(page, ws_exists)
        await log_in(page, client, other.email, PASSWORD)
        events = page.get_by_role("list", name="Security events")
        await expect(events.locator("li")).to_have_count(3)  # the sign-up, two logins
        await expect(events.locator("li").first).to_contain_text("Logged in")
        await expect(page.locator("#admin-console")).to_be_hidden()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"horizontal overflow at 360 px: scrollWidth {width}"
        assert problems == []
        await context.close()


async def admin_headers(client: Client, email: str) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
