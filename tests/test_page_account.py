"""The page's account settings and the links Frameflow mails, in Chromium against
the live app and a real SMTP peer (aiosmtpd): sign up with the form, follow the
verification link from the mail, change the password, create an API key (the
secret shown once, copied with the button, working against the API), revoke
it — by keyboard, at 360 px — and reset a forgotten password from the login
form through the mailed link."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from config.settings import Settings
from server.app import create_app
from tests import notify_helpers
from tests.browser import chromium
from tests.conftest import PASSWORD, register_and_login
from tests.notify_helpers import SmtpServer, eventually

pytestmark = pytest.mark.browser

Client = TestClient[Any, Any]
PUBLIC = "https://video.example.test"
NEW_PASSWORD = "a brand new passphrase"


smtp = notify_helpers.smtp


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        public_url=PUBLIC,
        workers_enabled=False,
    )


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def mailed_token(smtp: SmtpServer, recipient: str, kind: str) -> str:
    """The token of the newest `/#<kind>=` link mailed to `recipient`."""

    def token_in(message: EmailMessage) -> str | None:
        match = re.search(rf"{re.escape(PUBLIC)}/#{kind}=([A-Za-z0-9_-]+)", message.get_content())
        return match.group(1) if match else None

    async def arrived() -> str | None:
        tokens = [token_in(m) for m in smtp.inbox.messages if m["To"] == recipient]
        found = [t for t in tokens if t]
        return found[-1] if found else None

    return await eventually(arrived)


def watch_errors(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))

    def on_console(message: Any) -> None:
        # A refused call (the unverified key creation) is logged by the browser itself.
        if message.type == "error" and "403" not in message.text:
            problems.append(f"console.error: {message.text}")

    page.on("console", on_console)
    return problems


async def no_horizontal_overflow(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width} px wide at a 360 px viewport"


async def test_account_settings_verify_password_and_api_keys(
    client: Client, smtp: SmtpServer
) -> None:
    email = f"acct-{uuid.uuid4().hex[:8]}@example.com"
    base = str(client.make_url("/"))
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 360, "height": 800})
        await context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=base.rstrip("/")
        )
        page = await context.new_page()
        problems = watch_errors(page)
        await page.goto(base)
        await page.get_by_label("Email").fill(email)
        await page.locator("#password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#app")).to_be_visible()
        await expect(page.locator("#account-notice")).to_contain_text(f"Please confirm {email}")

        # Open the panel from the keyboard: the heading takes the focus.
        await page.locator("#account-btn").focus()
        await page.keyboard.press("Enter")
        panel = page.locator("#account-panel")
        await expect(panel).to_be_visible()
        await expect(page.locator("#account-btn")).to_have_attribute("aria-expanded", "true")
        await expect(page.locator("#account-title")).to_be_focused()
        await expect(page.locator("#email-status")).to_contain_text("not verified")
        await no_horizontal_overflow(page)

        # Unverified: key creation is refused with the reason.
        await page.get_by_label("Name", exact=True).fill("ci")
        await page.get_by_role("button", name="Create key").click()
        await expect(page.locator("#key-message")).to_contain_text("Verify your email")

        # Resend, then follow the link from the mail.
        await page.get_by_role("button", name="Send the verification email again").click()
        await expect(page.locator("#verify-message")).to_contain_text("on its way")
        token = await mailed_token(smtp, email, "verify")
        # The link opens in a new tab, which has no session: none is needed.
        link_tab = await context.new_page()
        link_problems = watch_errors(link_tab)
        await link_tab.goto(f"{base}#verify={token}")
        notice = link_tab.locator("#account-notice")
        await expect(notice).to_have_text("Your email address is verified.")
        assert "#verify" not in link_tab.url  # the token left the address bar
        await link_tab.close()
        assert link_problems == []
        # Reopened, the panel shows the new state.
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await page.locator("#account-btn").click()
        await expect(page.locator("#email-status")).to_contain_text("verified")
        await expect(page.locator("#email-status")).not_to_contain_text("not verified")
        await expect(page.locator("#resend-verification")).to_be_hidden()
        await expect(page.locator("#account-notice")).to_be_hidden()  # the reminder went

        # Change the password: wrong current one first.
        await page.get_by_label("Current password").fill("not my password")
        await page.get_by_label("New password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Change password").click()
        await expect(page.locator("#password-message")).to_contain_text("not correct")
        await page.get_by_label("Current password").fill(PASSWORD)
        await page.get_by_label("New password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Change password").click()
        await expect(page.locator("#password-message")).to_contain_text("Password changed")
        resp = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": NEW_PASSWORD}
        )
        assert resp.status == 200

        # Create a key with two scopes and an expiry, by keyboard.
        await page.get_by_label("Name", exact=True).fill("backup script")
        await page.get_by_label("Upload and delete videos").focus()
        await page.keyboard.press("Space")
        await page.get_by_label("Expires").select_option(label="In 30 days")
        await page.get_by_label("Expires").focus()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Create key")).to_be_focused()
        await page.keyboard.press("Enter")
        secret_box = page.locator("#key-secret")
        await expect(secret_box).to_be_visible()
        secret = await secret_box.input_value()
        assert secret.startswith("ff_")
        await page.get_by_role("button", name="Copy").click()
        assert await page.evaluate("navigator.clipboard.readText()") == secret
        rows = page.locator("li.api-key")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("backup script")
        await expect(rows.first).to_contain_text("videos:read, videos:write")
        await expect(rows.first).not_to_contain_text("Expires: never")
        assert secret not in await rows.first.inner_text()  # lists show the prefix only
        resp = await client.get("/api/v1/videos", headers={"X-API-Key": secret})
        assert resp.status == 200
        await no_horizontal_overflow(page)

        # Revoke: the first press asks, the second revokes.
        revoke = page.get_by_role("button", name="Revoke backup script")
        await revoke.click()
        await expect(revoke).to_have_text("Really revoke?")
        await revoke.click()
        await expect(rows).to_have_count(0)
        resp = await client.get("/api/v1/videos", headers={"X-API-Key": secret})
        assert resp.status == 401

        # Escape closes the panel and gives the focus back to its button.
        await page.locator("#key-name").focus()
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await expect(page.locator("#account-btn")).to_be_focused()
        await context.close()
    assert problems == []


async def test_following_a_reset_link_sets_a_new_password(client: Client, smtp: SmtpServer) -> None:
    user = await register_and_login(client)
    base = str(client.make_url("/"))
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 360, "height": 800})
        page = await context.new_page()
        problems = watch_errors(page)
        await page.goto(base)
        # Signing up with a taken address says no more than that it may be taken.
        await page.get_by_label("Email").fill(user.email)
        await page.locator("#password").fill("not the password")
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#auth-error")).to_contain_text("its owner has been emailed")
        await page.get_by_role("button", name="Forgot password?").click()
        await expect(page.locator("#account-notice")).to_contain_text(
            "If an account has this email address"
        )
        token = await mailed_token(smtp, user.email, "reset")

        await page.goto(f"{base}#reset={token}")
        await expect(page.locator("#reset-title")).to_be_focused()
        assert "#reset" not in page.url
        await page.locator("#reset-password").fill(NEW_PASSWORD)
        await page.locator("#reset-repeat").fill("something else")
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.locator("#reset-panel .error")).to_have_text("The two passwords differ.")
        await page.locator("#reset-repeat").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.locator("#account-notice")).to_contain_text(
            "Your password has been changed"
        )
        await expect(page.locator("#reset-panel")).to_be_hidden()
        await no_horizontal_overflow(page)

        # The old session has ended; the new password logs in.
        resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert resp.status == 401
        await page.get_by_label("Email").fill(user.email)
        await page.locator("#password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#app")).to_be_visible()

        # The same link a second time: the form says why it failed.
        await page.goto(f"{base}#reset={token}")
        await page.locator("#reset-password").fill("yet another password")
        await page.locator("#reset-repeat").fill("yet another password")
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.locator("#reset-panel .error")).to_contain_text("already been used")
        await context.close()
    # The refused login (401) and the spent link (410) are logged by the browser itself.
    assert [p for p in problems if "410" not in p and "401" not in p] == []
