"""The email outbox: a background task that sends what `notification_log` owes.

Rows appear in the transaction that ends a job (a trigger, see
sql/004_notifications.sql), or that makes an account token (verification,
password reset; `server.recovery`), so nothing is lost when a process dies: whichever
instance runs an `Outbox` next sends it. Rows are claimed with
`FOR UPDATE SKIP LOCKED` (instances never send the same row at once), and a
failed attempt is retried with exponential backoff until
`notify_max_attempts`, after which the row stays `failed` with its error.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from config.settings import Settings
from server.db import jobs as jobs_db
from server.db import notifications as notifications_db
from server.db.jobs import job_from_snapshot
from server.drain import RETRY_BASE_SECONDS, DrainLoop, next_retry
from server.jobs.serializers import job_json, listed_outputs, output_link_maker
from server.logs import get_logger
from server.metrics import Metrics
from server.notify.account_email import ACCOUNT_EVENTS, account_mail
from server.notify.email import body_for, compose, subject_for
from server.notify.mailer import Mailer, MailError
from server.notify.model import Notification
from server.recovery.tokens import AccountTokens
from server.serving.signing import UrlSigner
from server.tracing import untraced

log = get_logger("frameflow.notify")

POLL_SECONDS = 1.0
BATCH = 20
# A claimed row is skipped by others this long: more than one SMTP conversation.
CLAIM_LEASE_SECONDS = 120.0
# Outputs outlive one signed-URL lifetime; a mail read tomorrow should still work.
EMAIL_LINK_TTL_SECONDS = 7 * 24 * 3600


def base_url(settings: Settings) -> str:
    """Where links in mails point: the public URL, else what this server listens on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "localhost" if settings.host in {"0.0.0.0", "::", ""} else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def email_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """What a job email says: the job recorded by the trigger, rendered like the API
    renders it, and the video's name (rows queued before migration 007 hold their
    rendering already)."""
    if "job_row" in facts:
        return {**job_json(job_from_snapshot(facts["job_row"])), "filename": facts.get("filename")}
    return dict(facts)


class Outbox:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        mailer: Mailer,
        settings: Settings,
        signer: UrlSigner,
        account_tokens: AccountTokens,
        poll_seconds: float | None = None,
        retry_base_seconds: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.mailer = mailer
        self._metrics = metrics
        self.settings = settings
        self.signer = signer
        self.account_tokens = account_tokens
        self.retry_base_seconds = (
            RETRY_BASE_SECONDS if retry_base_seconds is None else retry_base_seconds
        )
        self._drain = DrainLoop(
            "notify-outbox",
            self.run_once,
            batch=BATCH,
            poll_seconds=POLL_SECONDS if poll_seconds is None else poll_seconds,
        )

    async def start(self) -> None:
        self._drain.start()

    async def stop(self) -> None:
        # A mail cut off mid-send is sent again after its claim lease: at least once.
        await self._drain.stop()

    def wake(self) -> None:
        self._drain.wake()

    @property
    def poll_seconds(self) -> float:
        return self._drain.poll_seconds

    @poll_seconds.setter
    def poll_seconds(self, value: float) -> None:
        self._drain.poll_seconds = value

    async def run_once(self) -> int:
        """Send what is due now; returns how many rows were claimed."""
        with untraced():  # polling: a trace only when there is something to send
            async with self.pool.acquire() as conn:
                due = await notifications_db.claim_due(
                    conn, limit=BATCH, lease_seconds=CLAIM_LEASE_SECONDS
                )
        for notification in due:
            await self._send(notification)
        return len(due)

    async def _send(self, n: Notification) -> None:
        subject: str | None = None
        try:
            if n.event in ACCOUNT_EVENTS:
                subject, body = self._account_mail(n)
            else:
                n = dataclasses.replace(n, facts=email_facts(n.facts))
                subject = subject_for(n.event, n.facts)
                body = await self._body(n)
            message = compose(
                mail_from=self.settings.mail_from,
                recipient=n.recipient,
                subject=subject,
                body=body,
                domain=urlsplit(base_url(self.settings)).hostname,
            )
            delivered = await self.mailer.send(message)
        except (MailError, ValueError) as exc:
            # ValueError: an address the email library will not write (never retried
            # into success, but recorded like any failure rather than lost).
            await self._failed(n, subject, str(exc) or type(exc).__name__)
            return
        async with self.pool.acquire() as conn:
            status = "sent" if delivered else "not_sent"
            await notifications_db.record_done(conn, n.id, status=status, subject=subject)
        self._count(n, status)
        log.info("notification_done", status=status, notification_id=str(n.id))

    async def _failed(self, n: Notification, subject: str | None, error: str) -> None:
        retry_in = next_retry(
            n.attempts, self.settings.notify_max_attempts, self.retry_base_seconds
        )
        final = retry_in is None
        async with self.pool.acquire() as conn:
            await notifications_db.record_failure(
                conn, n.id, subject=subject, error=error[:1000], retry_in=retry_in
            )
        self._count(n, "failed" if final else "retried")
        log.warning(
            "mail_failed" if final else "mail_retry",
            notification_id=str(n.id),
            attempts=n.attempts,
            retry_in=retry_in,
            error=error,
        )

    def _account_mail(self, n: Notification) -> tuple[str, str]:
        """The row holds the token's id only; the token is remade here, never stored."""
        token_id = n.facts.get("token_id")
        token = None if token_id is None else self.account_tokens.token_for(uuid.UUID(token_id))
        return account_mail(n.event, n.facts, base_url=base_url(self.settings), token=token)

    def _count(self, n: Notification, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.emails.labels(n.event, outcome).inc()

    async def _body(self, n: Notification) -> str:
        base = base_url(self.settings)
        links: list[tuple[str, str]] = []
        if n.job_id is not None and n.event == "job.succeeded":
            async with self.pool.acquire() as conn:
                outputs = await jobs_db.list_outputs(conn, n.job_id)
            link = output_link_maker(
                self.signer, n.job_id, EMAIL_LINK_TTL_SECONDS, lambda path: base + path
            )
            links = [(o.name, link(o.name)) for o in listed_outputs(outputs)]
        return body_for(
            n.event,
            n.facts,
            job_url=f"{base}/api/v1/jobs/{n.job_id}",
            output_links=links,
            links_valid_hours=EMAIL_LINK_TTL_SECONDS // 3600,
        )
