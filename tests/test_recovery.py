"""Account recovery against a real SMTP peer (aiosmtpd): the verification and reset
mails arrive, the tests take the token from the link in them and call the API
with it, as the page does. Also: single use, expiry, sessions ended by a reset
or a password change, sign-up and reset answers that do not tell a taken
address from a new one, what an unverified account is refused, and logged
mails without their tokens."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from config.settings import Settings, SettingsError
from server import appkeys
from server.app import create_app
from server.cleanup.sweep import run_sweep
from server.notify.account_email import masked_address
from server.serving.redact import redact_links
from tests import notify_helpers
from tests.conftest import PASSWORD, User, register_and_login, truncate_all
from tests.notify_helpers import SmtpServer, eventually

Client = TestClient[Any, Any]
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/me/verify-email"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/me/password"
ME = "/api/v1/me"
BASE = "https://video.example.test"
NEW_PASSWORD = "a brand new passphrase"


smtp = notify_helpers.smtp


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        mail_from="Frameflow <noreply@frameflow.test>",
        public_url=BASE,
        workers_enabled=False,
    )


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def mail_to(
    smtp: SmtpServer, recipient: str, subject_part: str, count: int = 1
) -> list[EmailMessage]:
    """The mails to `recipient` whose subject has `subject_part`, once `count` have come."""

    async def arrived() -> list[EmailMessage] | None:
        found = [
            m
            for m in smtp.inbox.messages
            if m["To"] == recipient and subject_part in str(m["Subject"])
        ]
        return found if len(found) >= count else None

    return await eventually(arrived)


def link_token(message: EmailMessage, kind: str) -> str:
    """The token of the page link (`{BASE}/#verify=…` or `#reset=…`) in a mail."""
    body = message.get_content()
    match = re.search(rf"{re.escape(BASE)}/#{kind}=([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(1)


async def error_code(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    code: str = (await resp.json())["error"]["code"]
    return code


async def sign_up(client: Client, email: str, password: str = PASSWORD) -> Any:
    resp = await client.post(REGISTER, json={"email": email, "password": password})
    return resp.status, await resp.json()


async def login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = await client.post(LOGIN, json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


# --- email verification ------------------------------------------------------


async def test_the_sign_up_mail_verifies_the_address_once(client: Client, smtp: SmtpServer) -> None:
    email = "new@example.com"
    assert (await sign_up(client, email))[0] == 202
    tokens = await login(client, email)
    me = await (await client.get("/api/v1/me", headers=bearer(tokens))).json()
    assert me["email_verified"] is False

    [message] = await mail_to(smtp, email, "confirm your email")
    token = link_token(message, "verify")
    assert len(token) >= 43  # 256 bits, base64url
    resp = await client.post(VERIFY, json={"token": token})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["email_verified"] is True
    me = await (await client.get("/api/v1/me", headers=bearer(tokens))).json()
    assert me["email_verified"] is True

    resp = await client.post(VERIFY, json={"token": token})
    assert await error_code(resp, 410) == "token_used"
    # Only a hash is stored: the token itself is nowhere in the database.
    async with client.server.app[appkeys.POOL].acquire() as conn:
        tokens = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM account_tokens t")
        mails = await conn.fetchval("SELECT string_agg(n::text, ' ') FROM notification_log n")
    assert token not in tokens and token not in mails


async def test_unknown_and_malformed_tokens_are_400(client: Client) -> None:
    for token in ("", "x" * 43, "not a token", "é" * 43):
        resp = await client.post(VERIFY, json={"token": token})
        assert await error_code(resp, 400) == "token_invalid"
        resp = await client.post(RESET_CONFIRM, json={"token": token, "password": NEW_PASSWORD})
        assert await error_code(resp, 400) == "token_invalid"


async def test_an_expired_verification_link_is_410(client: Client, smtp: SmtpServer) -> None:
    await sign_up(client, "late@example.com")
    token = link_token((await mail_to(smtp, "late@example.com", "confirm"))[0], "verify")
    async with client.server.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    resp = await client.post(VERIFY, json={"token": token})
    assert await error_code(resp, 410) == "token_expired"


async def test_a_verification_link_expires_after_the_setting(
    client: Client, smtp: SmtpServer, settings: Settings
) -> None:
    await sign_up(client, "ttl@example.com")
    await mail_to(smtp, "ttl@example.com", "confirm")
    async with client.server.app[appkeys.POOL].acquire() as conn:
        seconds = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) FROM account_tokens"
        )
    assert abs(float(seconds) - settings.email_verification_ttl_seconds) < 60


async def test_an_unverified_account_may_not_create_keys_or_webhooks(
    client: Client, smtp: SmtpServer
) -> None:
    user = await register_and_login(client, "unverified@example.com", verified=False)
    key = {"name": "ci", "scopes": ["videos:read"]}
    resp = await client.post("/api/v1/api-keys", json=key, headers=user.headers)
    assert await error_code(resp, 403) == "email_unverified"
    assert (await resp.json())["error"]["needs"] == "api_keys"
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}
    resp = await client.post("/api/v1/webhooks", json=hook, headers=user.headers)
    assert await error_code(resp, 403) == "email_unverified"
    # Everything else is open.
    assert (await client.get("/api/v1/videos", headers=user.headers)).status == 200
    assert (await client.get("/api/v1/api-keys", headers=user.headers)).status == 200

    token = link_token((await mail_to(smtp, user.email, "confirm"))[0], "verify")
    assert (await client.post(VERIFY, json={"token": token})).status == 200
    resp = await client.post("/api/v1/api-keys", json=key, headers=user.headers)
    assert resp.status == 201, await resp.text()


async def test_the_setting_decides_what_unverified_accounts_may_do(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    app = create_app(make_settings(unverified_email_denies="videos:read", workers_enabled=False))
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client, verified=False)
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert await error_code(resp, 403) == "email_unverified"
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["videos:read"]}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    # ... and a key of that account is held to the same rule.
    key = (await resp.json())["secret"]
    resp = await client.get("/api/v1/videos", headers={"X-API-Key": key})
    assert await error_code(resp, 403) == "email_unverified"


async def test_resend_mails_a_new_link_until_verified(client: Client, smtp: SmtpServer) -> None:
    user = await register_and_login(client, "again@example.com", verified=False)
    resp = await client.post(RESEND, headers=user.headers)
    assert resp.status == 202, await resp.text()
    first, second = await mail_to(smtp, user.email, "confirm", count=2)
    # One use spends every link sent before it.
    assert (await client.post(VERIFY, json={"token": link_token(second, "verify")})).status == 200
    resp = await client.post(VERIFY, json={"token": link_token(first, "verify")})
    assert await error_code(resp, 410) == "token_used"
    resp = await client.post(RESEND, headers=user.headers)
    assert await error_code(resp, 409) == "email_already_verified"


def move_to(email: str, password: str | None = PASSWORD) -> dict[str, Any]:
    """A PATCH /me body that changes the email (with the current password, by default)."""
    return {"email": email} if password is None else {"email": email, "current_password": password}


async def test_changing_the_email_verifies_the_new_one(client: Client, smtp: SmtpServer) -> None:
    user = await register_and_login(client, "old@example.com")  # verified
    other = await register_and_login(client, "taken@example.com")
    resp = await client.patch(ME, json=move_to("taken@example.com"), headers=user.headers)
    assert await error_code(resp, 409) == "email_taken"

    resp = await client.patch(ME, json=move_to("new@example.com"), headers=user.headers)
    assert resp.status == 200, await resp.text()
    me = await resp.json()
    assert (me["email"], me["email_verified"]) == ("new@example.com", False)
    [message] = await mail_to(smtp, "new@example.com", "confirm")
    # Unverified again: key creation waits for the new address.
    key = {"name": "k", "scopes": ["videos:read"]}
    resp = await client.post("/api/v1/api-keys", json=key, headers=user.headers)
    assert await error_code(resp, 403) == "email_unverified"
    resp = await client.post(VERIFY, json={"token": link_token(message, "verify")})
    assert (await resp.json())["email"] == "new@example.com"
    assert (await client.post("/api/v1/api-keys", json=key, headers=user.headers)).status == 201
    assert other.email == "taken@example.com"


async def test_a_link_for_a_replaced_address_no_longer_verifies(
    client: Client, smtp: SmtpServer
) -> None:
    user = await register_and_login(client, "first@example.com", verified=False)
    [message] = await mail_to(smtp, user.email, "confirm")
    resp = await client.patch(ME, json=move_to("second@example.com"), headers=user.headers)
    assert resp.status == 200
    resp = await client.post(VERIFY, json={"token": link_token(message, "verify")})
    assert await error_code(resp, 410) == "token_used"  # changing the email spent it


async def test_changing_the_email_needs_the_password_and_tells_the_old_address(
    client: Client, smtp: SmtpServer
) -> None:
    user = await register_and_login(client, "mine@example.com")
    taken = await register_and_login(client, "someone@example.com")
    resp = await client.patch(ME, json=move_to("thief@example.com", None), headers=user.headers)
    assert await error_code(resp, 400) == "current_password_required"
    assert (await resp.json())["error"]["field"] == "current_password"
    wrong = move_to("thief@example.com", "not my password")
    resp = await client.patch(ME, json=wrong, headers=user.headers)
    assert await error_code(resp, 403) == "wrong_password"
    resp = await client.patch(ME, json=move_to(taken.email), headers=user.headers)
    assert await error_code(resp, 409) == "email_taken"
    # Nothing changed, nothing mailed; the same address again needs no password.
    resp = await client.patch(ME, json=move_to(user.email, None), headers=user.headers)
    assert (await resp.json())["email"] == user.email
    assert not [m for m in smtp.inbox.messages if m["To"] == "thief@example.com"]

    resp = await client.patch(ME, json=move_to("moved@example.com"), headers=user.headers)
    assert resp.status == 200, await resp.text()
    [notice] = await mail_to(smtp, user.email, "email address was changed")
    body = notice.get_content()
    assert "m***@example.com" in body and "moved@example.com" not in body
    # A notice, not a key: no token, no link but the server's own address.
    assert "#verify=" not in body and "#reset=" not in body
    assert re.findall(r"https?://\S+", body) == [f"{BASE}/"]
    await mail_to(smtp, "moved@example.com", "confirm")

    # Each refusal is on the owner's record, as a failed password change would be.
    resp = await client.get("/api/v1/me/security-events", headers=user.headers)
    changes = [
        (e["outcome"], (e["detail"] or {}).get("reason"))
        for e in reversed((await resp.json())["items"])
        if e["action"] == "email.change"
    ]
    assert changes == [
        ("failure", "wrong_current_password"),
        ("failure", "email_taken"),
        ("success", None),
    ]


async def signed_in_with_two_password_tries(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> tuple[Client, User]:
    app = create_app(make_settings(rate_limit_login_per_minute=2, workers_enabled=False))
    client = await aiohttp_client(app)
    await truncate_all(app)
    return client, await register_and_login(client)


async def test_email_changes_share_the_password_change_budget(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client, user = await signed_in_with_two_password_tries(make_settings, aiohttp_client)
    wrong = {"current_password": "wrong guess!", "new_password": NEW_PASSWORD}
    assert (await client.post(CHANGE, json=wrong, headers=user.headers)).status == 403
    body = move_to("elsewhere@example.com", "another guess")
    statuses = [(await client.patch(ME, json=body, headers=user.headers)).status for _ in range(2)]
    assert statuses == [403, 429]


# --- sign-up does not tell ----------------------------------------------------


async def test_sign_up_with_a_taken_address_answers_like_a_new_one(
    client: Client, smtp: SmtpServer
) -> None:
    owner = await register_and_login(client, "owner@example.com")
    new = await sign_up(client, "fresh@example.com", "some other password")
    taken = await sign_up(client, "Owner@Example.com", "some other password")
    assert new == taken
    assert new[0] == 202 and "id" not in new[1]
    # The owner is told instead; the account and its password are unchanged.
    [message] = await mail_to(smtp, owner.email, "tried to register")
    assert "#verify=" not in message.get_content() and "#reset=" not in message.get_content()
    await login(client, owner.email)
    # A second try within the hour does not mail the owner again.
    await sign_up(client, "owner@example.com", "yet another password")
    await mail_to(smtp, "fresh@example.com", "confirm")
    await mail_to(smtp, owner.email, "confirm")
    assert len([m for m in smtp.inbox.messages if m["To"] == owner.email]) == 2  # + sign-up's


# --- password reset -------------------------------------------------------------


async def test_reset_answers_alike_for_known_and_unknown_addresses(
    client: Client, smtp: SmtpServer
) -> None:
    user = await register_and_login(client, "known@example.com")
    known = await client.post(RESET, json={"email": user.email})
    unknown = await client.post(RESET, json={"email": "nobody@example.com"})
    assert known.status == unknown.status == 202
    assert await known.json() == await unknown.json()
    await mail_to(smtp, user.email, "reset your password")
    assert not [m for m in smtp.inbox.messages if m["To"] == "nobody@example.com"]


async def test_the_reset_link_sets_a_new_password_once_and_ends_every_session(
    client: Client, smtp: SmtpServer
) -> None:
    user = await register_and_login(client, "forgot@example.com")
    second_session = await login(client, user.email)
    resp = await client.post(RESET, json={"email": "FORGOT@example.com"})
    assert resp.status == 202
    [message] = await mail_to(smtp, user.email, "reset your password")
    token = link_token(message, "reset")

    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": "short"})
    assert await error_code(resp, 400) == "invalid_password"  # the rules of sign-up
    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": NEW_PASSWORD})
    assert resp.status == 204, await resp.text()

    for refresh_token in (user.refresh_token, second_session["refresh_token"]):
        resp = await client.post(REFRESH, json={"refresh_token": refresh_token})
        assert resp.status == 401, await resp.text()
    # Their access tokens too, not only when they expire.
    for headers in (user.headers, bearer(second_session)):
        resp = await client.get("/api/v1/me", headers=headers)
        assert await error_code(resp, 401) == "session_ended"
    resp = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert await error_code(resp, 401) == "invalid_credentials"
    await login(client, user.email, NEW_PASSWORD)

    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": "another one!"})
    assert await error_code(resp, 410) == "token_used"


async def test_an_expired_reset_link_is_410(client: Client, smtp: SmtpServer) -> None:
    user = await register_and_login(client, "slow@example.com")
    await client.post(RESET, json={"email": user.email})
    token = link_token((await mail_to(smtp, user.email, "reset"))[0], "reset")
    async with client.server.app[appkeys.POOL].acquire() as conn:
        ttl = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) FROM account_tokens "
            "WHERE purpose = 'password_reset'"
        )
        await conn.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    assert abs(float(ttl) - 3600) < 60  # the default: one hour
    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": NEW_PASSWORD})
    assert await error_code(resp, 410) == "token_expired"
    await login(client, user.email)  # the password is unchanged


async def test_the_sweep_forgets_tokens_a_week_after_they_expired(
    client: Client, smtp: SmtpServer, app: web.Application
) -> None:
    user = await register_and_login(client, "sweep@example.com", verified=False)
    await client.post(RESET, json={"email": user.email})
    verify = link_token((await mail_to(smtp, user.email, "confirm"))[0], "verify")
    reset = link_token((await mail_to(smtp, user.email, "reset"))[0], "reset")
    await client.post(RESET, json={"email": user.email})  # a third token, left valid
    await mail_to(smtp, user.email, "reset", count=2)
    async with app[appkeys.POOL].acquire() as conn:
        # Verification: expired 8 days ago (goes); the first reset link: an hour ago (stays).
        await conn.execute(
            "UPDATE account_tokens SET expires_at = now() - interval '8 days' "
            "WHERE purpose = 'verify_email'"
        )
        await conn.execute(
            "UPDATE account_tokens SET expires_at = now() - interval '1 hour' WHERE id = "
            "(SELECT id FROM account_tokens WHERE purpose = 'password_reset' "
            " ORDER BY created_at LIMIT 1)"
        )
        await conn.execute(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute' "
            "WHERE user_id = $1::uuid",
            user.id,
        )
    sweep_args = (
        app[appkeys.POOL],
        app[appkeys.VIDEOS],
        app[appkeys.STORAGE],
        app[appkeys.SETTINGS],
    )
    dry = await run_sweep(*sweep_args, dry_run=True)
    assert dry.account_tokens_deleted == 1 and dry.errors == []

    report = await app[appkeys.CLEANUP].run_once()
    assert report is not None and report.errors == []
    assert (report.account_tokens_deleted, report.refresh_tokens_deleted) == (1, 1)
    metrics = app[appkeys.METRICS].registry
    sample = "frameflow_cleanup_tokens_deleted_total"
    assert metrics.get_sample_value(sample, {"kind": "account"}) == 1
    assert metrics.get_sample_value(sample, {"kind": "refresh"}) == 1
    async with app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM account_tokens") == 2
    # Forgotten: like a link never sent. Expired within the week: still says so.
    resp = await client.post(VERIFY, json={"token": verify})
    assert await error_code(resp, 400) == "token_invalid"
    resp = await client.post(RESET_CONFIRM, json={"token": reset, "password": NEW_PASSWORD})
    assert await error_code(resp, 410) == "token_expired"


async def test_a_verification_token_does_not_reset_a_password(
    client: Client, smtp: SmtpServer
) -> None:
    await sign_up(client, "mixed@example.com")
    token = link_token((await mail_to(smtp, "mixed@example.com", "confirm"))[0], "verify")
    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": NEW_PASSWORD})
    assert await error_code(resp, 400) == "token_invalid"


# --- password change ------------------------------------------------------------


async def test_change_password_needs_the_current_one_and_ends_the_other_sessions(
    client: Client,
) -> None:
    user = await register_and_login(client)
    other = await login(client, user.email)
    resp = await client.post(
        CHANGE,
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert await error_code(resp, 403) == "wrong_password"
    resp = await client.post(
        CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert resp.status == 204, await resp.text()
    # The caller's session goes on, with the access token it has; the other one has
    # ended, its access token included.
    assert (await client.get("/api/v1/me", headers=user.headers)).status == 200
    resp = await client.get("/api/v1/me", headers=bearer(other))
    assert await error_code(resp, 401) == "session_ended"
    resp = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/v1/me", headers=bearer(await resp.json()))).status == 200
    resp = await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    assert resp.status == 401
    fresh = await login(client, user.email, NEW_PASSWORD)
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status == 200
    assert (await client.get("/api/v1/me", headers=user.headers)).status == 200


async def test_ended_access_tokens_are_refused_by_every_instance_and_socket(
    client: Client, smtp: SmtpServer, settings: Settings, aiohttp_client: Any
) -> None:
    """The generation is read with the per-request account check: another instance
    (here one that caches nothing) refuses the token too, and so does a new socket.
    An API key is not a session: it keeps working."""
    user = await register_and_login(client, "elsewhere@example.com")
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["videos:read"]}, headers=user.headers
    )
    key = {"X-API-Key": (await resp.json())["secret"]}
    uncached = dataclasses.replace(settings, account_check_cache_seconds=0)
    other = await aiohttp_client(create_app(uncached))
    assert (await other.get("/api/v1/me", headers=user.headers)).status == 200

    await client.post(RESET, json={"email": user.email})
    token = link_token((await mail_to(smtp, user.email, "reset"))[0], "reset")
    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": NEW_PASSWORD})
    assert resp.status == 204, await resp.text()

    for instance in (client, other):
        resp = await instance.get("/api/v1/me", headers=user.headers)
        assert await error_code(resp, 401) == "session_ended"
        assert (await instance.get("/api/v1/videos", headers=key)).status == 200
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": user.access_token})
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_ended")


async def test_change_password_is_rate_limited(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client, user = await signed_in_with_two_password_tries(make_settings, aiohttp_client)
    body = {"current_password": "wrong guess!", "new_password": NEW_PASSWORD}
    statuses = [
        (await client.post(CHANGE, json=body, headers=user.headers)).status for _ in range(3)
    ]
    assert statuses == [403, 403, 429]


async def test_an_api_key_cannot_change_the_password(client: Client, user: User) -> None:
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["videos:read"]}, headers=user.headers
    )
    key = (await resp.json())["secret"]
    resp = await client.post(
        CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-API-Key": key},
    )
    assert await error_code(resp, 403) == "session_required"


# --- logged, not sent -------------------------------------------------------------


async def test_without_smtp_account_mails_are_logged_without_their_tokens(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    app = create_app(make_settings(public_url=BASE, workers_enabled=False))
    client = await aiohttp_client(app)
    await truncate_all(app)
    app[appkeys.OUTBOX].poll_seconds = 0.05
    with capture_logs() as logs:
        user = await register_and_login(client, "logged@example.com", verified=False)
        await client.post(RESET, json={"email": user.email})

        async def both_logged() -> list[dict[str, Any]] | None:
            found = [e for e in logs if e["event"] == "mail_not_sent"]
            return found if len(found) == 2 else None

        logged = await eventually(both_logged)
    async with app[appkeys.POOL].acquire() as conn:
        rows = await conn.fetch("SELECT event, facts, status FROM notification_log")
    assert {r["status"] for r in rows} == {"not_sent"}
    # The tokens those mails carried, remade from their ids as the outbox does.
    tokens = [
        app[appkeys.ACCOUNT_TOKENS].token_for(uuid.UUID(r["facts"]["token_id"])) for r in rows
    ]
    assert len(tokens) == 2
    rendered = repr(logs)
    for token in tokens:
        assert token not in rendered
    bodies = " ".join(e["body"] for e in logged)
    assert f"{BASE}/#verify=[redacted]" in bodies and f"{BASE}/#reset=[redacted]" in bodies


def test_the_unverified_setting_names_only_known_gates() -> None:
    with pytest.raises(SettingsError, match="FRAMEFLOW_UNVERIFIED_EMAIL_DENIES"):
        Settings(unverified_email_denies="api_keys,everything")
    assert Settings(unverified_email_denies=" webhooks , ").unverified_email_denied == {"webhooks"}
    assert Settings(unverified_email_denies="").unverified_email_denied == frozenset()


@pytest.mark.parametrize(
    ("email", "masked"),
    [("new@example.com", "n***@example.com"), ("x@a.io", "x***@a.io"), ("a@b@c.de", "a***@c.de")],
)
def test_the_notice_masks_the_new_address(email: str, masked: str) -> None:
    assert masked_address(email) == masked


def test_redaction_cuts_account_tokens_out_of_page_links() -> None:
    text = f"open {BASE}/#verify=abc_DEF-123 or {BASE}/#reset=zzz now"
    assert redact_links(text) == f"open {BASE}/#verify=[redacted] or {BASE}/#reset=[redacted] now"


# --- the audit log ----------------------------------------------------------------


async def test_each_recovery_step_is_on_the_owners_record(client: Client, smtp: SmtpServer) -> None:
    email = "recorded@example.com"
    await sign_up(client, email)
    tokens = await login(client, email)
    token = link_token((await mail_to(smtp, email, "confirm your email"))[0], "verify")
    assert (await client.post(VERIFY, json={"token": token})).status == 200
    wrong = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    assert (await client.post(CHANGE, json=wrong, headers=bearer(tokens))).status == 403
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await client.post(CHANGE, json=right, headers=bearer(tokens))).status == 204
    await client.post(RESET, json={"email": email})
    await client.post(RESET, json={"email": "nobody-here@example.com"})  # records nothing
    token = link_token((await mail_to(smtp, email, "reset"))[0], "reset")
    resp = await client.post(RESET_CONFIRM, json={"token": token, "password": PASSWORD})
    assert resp.status == 204, await resp.text()
    tokens = await login(client, email)
    resp = await client.patch(ME, json=move_to("moved@example.com"), headers=bearer(tokens))
    assert resp.status == 200, await resp.text()

    resp = await client.get("/api/v1/me/security-events", headers=bearer(tokens))
    assert resp.status == 200, await resp.text()
    events = [(e["action"], e["outcome"]) for e in reversed((await resp.json())["items"])]
    recovery = [e for e in events if not e[0].startswith("auth.login")]
    assert recovery == [
        ("auth.register", "success"),
        ("email.verify", "success"),
        ("password.change", "failure"),
        ("password.change", "success"),
        ("password.reset_requested", "success"),
        ("password.reset", "success"),
        ("email.change", "success"),
    ]
    async with client.server.app[appkeys.POOL].acquire() as conn:
        details = await conn.fetchval("SELECT string_agg(detail::text, ' ') FROM audit_log")
    assert token not in details and NEW_PASSWORD not in details and PASSWORD not in details
