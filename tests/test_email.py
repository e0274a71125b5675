"""Job emails against a real SMTP server on loopback (aiosmtpd): sent when a job
succeeds or fails, not when the owner turned them off, retried with backoff while
the server is down, never with injected headers, and only logged without SMTP."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from config.settings import Settings
from server import appkeys
from server.drain import DrainLoop, retry_delay
from server.notify.email import clean_header_text, compose, subject_for
from server.serving.redact import redact_links
from tests.conftest import User
from tests.notify_helpers import (
    FAST_JOBS,
    SmtpServer,
    app_with_fake_runner,
    eventually,
    free_port,
    run_job,
    upload,
)

Client = TestClient[Any, Any]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def smtp_up(smtp: SmtpServer) -> SmtpServer:
    smtp.start()
    return smtp


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    # aiosmtpd offers no STARTTLS here; production keeps it required by default.
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        mail_from="Frameflow <noreply@frameflow.test>",
        public_url="https://video.example.test",
        **FAST_JOBS,
    )


@pytest.fixture
def app(settings: Settings, database_url: str) -> web.Application:
    return app_with_fake_runner(settings, database_url)


@pytest.fixture
async def video_id(client: Client, user: User, sample_mp4: Path) -> str:
    outbox = client.server.app[appkeys.OUTBOX]
    # These tests are about job mails: the sign-up's verification mail (tried while
    # the SMTP peer was not up yet) is dropped. tests/test_recovery.py covers it.
    async with client.server.app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM notification_log WHERE job_id IS NULL")
    outbox.poll_seconds = 0.05
    outbox.retry_base_seconds = 0.3
    return await upload(client, user, sample_mp4)


async def log_rows(client: Client) -> list[dict[str, Any]]:
    async with client.server.app[appkeys.POOL].acquire() as conn:
        rows = await conn.fetch("SELECT * FROM notification_log ORDER BY created_at")
    return [dict(r) for r in rows]


async def row_with(client: Client, **expected: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        for row in await log_rows(client):
            if all(row[k] == v for k, v in expected.items()):
                return row
        return None

    return await eventually(probe)


async def test_a_succeeded_job_mails_its_owner_what_happened_with_links(
    client: Client, user: User, video_id: str, smtp_up: SmtpServer
) -> None:
    job = await run_job(client, user, video_id, "sleep")
    assert job["status"] == "succeeded"
    row = await row_with(client, status="sent")
    assert (row["recipient"], row["event"], row["attempts"]) == (user.email, "job.succeeded", 1)

    [message] = smtp_up.inbox.messages
    assert smtp_up.inbox.envelopes[0].rcpt_tos == [user.email]
    assert message["To"] == user.email
    assert message["Subject"] == row["subject"] == "Frameflow: sleep of sample.mp4 is ready"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "succeeded" in body
    assert f"https://video.example.test/api/v1/jobs/{job['id']}" in body
    links = [w for w in body.split() if w.startswith("https://") and "/t/" in w]
    assert {link.rsplit("/", 1)[1] for link in links} == {"part-1.txt", "result.txt"}
    # The signed link opens the output without any header.
    result = next(link for link in links if link.endswith("result.txt"))
    resp = await client.get(urlsplit(result).path)
    assert resp.status == 200
    assert await resp.text() == "slept 0.2"


async def test_a_failed_job_mails_the_error(
    client: Client, user: User, video_id: str, smtp_up: SmtpServer
) -> None:
    job = await run_job(client, user, video_id, "fail")
    assert job["status"] == "failed"
    await row_with(client, status="sent", event="job.failed")
    [message] = smtp_up.inbox.messages
    assert message["Subject"] == "Frameflow: fail of sample.mp4 failed"
    body = message.get_content()
    assert "fake failure: the input is not what it claims" in body
    assert "/t/" not in body  # no outputs to link


async def test_no_mail_when_the_owner_turned_them_off(
    client: Client, user: User, video_id: str, smtp_up: SmtpServer
) -> None:
    resp = await client.patch(
        "/api/v1/me", json={"email_notifications": False}, headers=user.headers
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["email_notifications"] is False
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["email_notifications"] is False

    await run_job(client, user, video_id, "sleep")
    await run_job(client, user, video_id, "fail")
    assert await log_rows(client) == []
    assert smtp_up.inbox.envelopes == []


async def test_patch_me_names_a_bad_field(client: Client, user: User) -> None:
    for body, field in (
        ({"email_notifications": "no"}, "email_notifications"),
        ({"role": "admin"}, "role"),
    ):
        resp = await client.patch("/api/v1/me", json=body, headers=user.headers)
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == field
    resp = await client.patch("/api/v1/me", json={"email_notifications": False})
    assert resp.status == 401


async def test_smtp_down_is_recorded_retried_with_backoff_then_sent(
    client: Client, user: User, video_id: str, smtp: SmtpServer
) -> None:
    await run_job(client, user, video_id, "fail")
    first = await row_with(client, status="retry", attempts=1)
    assert first["error"]  # connection refused, in aiosmtplib's words
    assert first["next_attempt_at"] > first["created_at"]
    second = await row_with(client, status="retry", attempts=2)
    # Backoff: the second wait is twice the first (0.3 s, then 0.6 s).
    assert retry_delay(2, 0.3) == 2 * retry_delay(1, 0.3)
    assert second["next_attempt_at"] > first["next_attempt_at"]

    smtp.start()
    sent = await row_with(client, status="sent")
    assert sent["attempts"] >= 3
    assert sent["error"] is None
    assert len(smtp.inbox.messages) == 1
    assert email_count(client, "job.failed", "retried") == sent["attempts"] - 1
    assert email_count(client, "job.failed", "sent") == 1


def email_count(client: Client, kind: str, outcome: str) -> float:
    registry = client.server.app[appkeys.METRICS].registry
    value = registry.get_sample_value("frameflow_emails_total", {"kind": kind, "outcome": outcome})
    return value or 0.0


async def test_stop_ends_the_loop_even_when_a_wake_up_comes_with_it() -> None:
    """Python 3.11's `asyncio.wait_for` lost a cancel that arrived together with
    the wake-up it waited for (the queued mail of a request finishing as the app
    stopped), and the app's shutdown then waited forever."""
    polled = asyncio.Event()

    async def run_once() -> int:
        polled.set()
        return 0

    loop = DrainLoop("test-drain", run_once, batch=10, poll_seconds=60.0)
    loop.start()
    await polled.wait()
    for _ in range(3):  # parked in its wait for a wake-up
        await asyncio.sleep(0)
    loop.wake()
    stopping = asyncio.create_task(loop.stop())
    # A hang guard, not a timing assertion (stop() swallows a cancel, so no timeout()).
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert stopping in done, "the loop went on after stop()"


async def test_stop_ends_the_loop_even_when_run_once_swallows_the_cancel() -> None:
    """Whatever runs under run_once (a mail client, a driver) may lose a cancel;
    stop() cancels again until the task has ended, and the loop ends at its next turn."""
    started = asyncio.Event()

    async def run_once() -> int:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)  # the cancel is swallowed here, as a buggy library might
        return 10  # "a full batch": the loop would go round at once

    loop = DrainLoop("test-drain", run_once, batch=10, poll_seconds=60.0)
    loop.start()
    await started.wait()
    stopping = asyncio.create_task(loop.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)  # a hang guard
    assert stopping in done, "the loop went on after stop()"


async def test_a_file_name_cannot_inject_headers(
    client: Client, user: User, video_id: str, smtp_up: SmtpServer
) -> None:
    # Set in the database: whatever uploads make of such a name, mail must cope.
    evil = "clip.mp4\r\nBcc: evil@x\r\n\r\nfake body\nX-Evil: 1"
    async with client.server.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE videos SET filename = $1", evil)
    await run_job(client, user, video_id, "sleep")
    await row_with(client, status="sent")

    [envelope] = smtp_up.inbox.envelopes
    assert envelope.rcpt_tos == [user.email]
    [message] = smtp_up.inbox.messages
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert "Bcc: evil@x" in message["Subject"]  # shown as text, harmlessly


def test_compose_cleans_and_folds_user_text() -> None:
    assert clean_header_text("a\r\nb\tc\x00d\u2028e\u202ef") == "a b c d e f"
    assert clean_header_text("x" * 500).endswith("…")
    subject = subject_for("job.succeeded", {"operation": "frames", "filename": "é" * 300})
    message = compose(
        mail_from="Frameflow <noreply@frameflow.test>",
        recipient="user@example.com",
        subject=subject,
        body="hello\n",
    )
    raw = message.as_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    with pytest.raises(ValueError):
        compose(mail_from="a@b", recipient="x@y.z\r\nBcc: evil@x", subject="s", body="b")


@pytest.fixture
def no_smtp_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST_JOBS)


async def test_without_smtp_mails_are_logged_and_recorded_not_sent(
    make_settings: Callable[..., Settings],
    database_url: str,
    aiohttp_client: Any,
    sample_mp4: Path,
) -> None:
    from tests.conftest import register_and_login, truncate_all

    app = app_with_fake_runner(make_settings(**FAST_JOBS), database_url)
    client = await aiohttp_client(app)
    await truncate_all(app)
    app[appkeys.OUTBOX].poll_seconds = 0.05
    user = await register_and_login(client)
    video_id = await upload(client, user, sample_mp4)
    with capture_logs() as logs:
        await run_job(client, user, video_id, "sleep")
        row = await row_with(client, status="not_sent", event="job.succeeded")
    assert row["attempts"] == 1 and row["subject"].endswith("is ready")
    logged = [
        e for e in logs if e["event"] == "mail_not_sent" and e["subject"].endswith("is ready")
    ]
    assert len(logged) == 1
    assert logged[0]["to"] == user.email
    assert "FRAMEFLOW_SMTP_HOST" in logged[0]["reason"]
    assert email_count(client, "job.succeeded", "not_sent") == 1


async def test_logged_mails_keep_their_links_but_not_their_signatures(
    make_settings: Callable[..., Settings],
    database_url: str,
    aiohttp_client: Any,
    sample_mp4: Path,
) -> None:
    """Without SMTP the body goes to the log, where a signed link would be a
    credential for whoever reads it: its token is cut out, the rest stays."""
    from tests.conftest import register_and_login, truncate_all

    app = app_with_fake_runner(
        make_settings(public_url="https://video.example.test", **FAST_JOBS), database_url
    )
    client = await aiohttp_client(app)
    await truncate_all(app)
    app[appkeys.OUTBOX].poll_seconds = 0.05
    user = await register_and_login(client)
    video_id = await upload(client, user, sample_mp4)
    with capture_logs() as logs:
        job = await run_job(client, user, video_id, "sleep")
        await row_with(client, status="not_sent", event="job.succeeded")
    [logged] = [
        e for e in logs if e["event"] == "mail_not_sent" and e["subject"].endswith("is ready")
    ]
    body = logged["body"]
    # Still useful: what happened, which outputs, where the job is.
    assert "succeeded" in body and "result.txt" in body and "part-1.txt" in body
    assert f"https://video.example.test/api/v1/jobs/{job['id']}" in body
    assert f"/api/v1/jobs/{job['id']}/t/[redacted]/result.txt" in body
    # No signature and no token path anywhere in what was logged.
    rendered = repr(logs)
    assert "signature=" not in rendered
    assert re.search(r"/t/\d+\.", rendered) is None, rendered


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://h/api/v1/videos/V/content?expires=9&signature=abc_-DEF",
            "https://h/api/v1/videos/V/content?expires=9&signature=[redacted]",
        ),
        (
            "see http://h/x?Signature=abc&expires=9 now",
            "see http://h/x?Signature=[redacted]&expires=9 now",
        ),
        (
            "  a.zip: https://h/api/v1/jobs/J/t/1700000000.AbC-_x/hls/master.m3u8\n",
            "  a.zip: https://h/api/v1/jobs/J/t/[redacted]/hls/master.m3u8\n",
        ),
        ("/api/v1/jobs/J/t/1.2.sig/a", "/api/v1/jobs/J/t/[redacted]/a"),
        (  # an S3 presigned URL (storage/s3_get.py reads through them)
            "http://s3/b/k?X-Amz-Credential=AK%2F1&X-Amz-Security-Token=T%2B&X-Amz-Signature=ab12",
            "http://s3/b/k?X-Amz-Credential=AK%2F1&X-Amz-Security-Token=[redacted]"
            "&X-Amz-Signature=[redacted]",
        ),
        ("no links here, not even t/1.x", "no links here, not even t/1.x"),
    ],
)
def test_redact_links(text: str, expected: str) -> None:
    assert redact_links(text) == expected
