"""SQL for `notification_log`: the email outbox, which is also its record.

Rows are inserted by a trigger when a job ends (sql/004_notifications.sql);
this module claims due rows, records how each attempt went, and lists them.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from server.notify.model import Notification

_COLUMNS = (
    "id, user_id, job_id, event, recipient, subject, facts, status, attempts, error, "
    "next_attempt_at, created_at, sent_at"
)


def _notification(row: asyncpg.Record) -> Notification:
    values = dict(row)
    facts = values["facts"]
    values["facts"] = json.loads(facts) if isinstance(facts, str) else facts
    return Notification(**values)


async def claim_due(
    conn: asyncpg.Connection, *, limit: int, lease_seconds: float
) -> list[Notification]:
    """Take up to `limit` due rows and count the attempt. The row is not held
    locked while the mail goes out: instead its next attempt is pushed a lease
    ahead, so that another instance skips it now, and a process that dies
    mid-send leaves it due again once the lease has passed (at least once)."""
    rows = await conn.fetch(
        f"""
        UPDATE notification_log n
        SET attempts = n.attempts + 1,
            status = 'sending',
            next_attempt_at = now() + make_interval(secs => $2)
        WHERE n.id IN (
            SELECT id FROM notification_log
            WHERE status IN ('pending', 'sending', 'retry') AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        limit,
        lease_seconds,
    )
    return [_notification(r) for r in rows]


async def record_done(
    conn: asyncpg.Connection, notification_id: uuid.UUID, *, status: str, subject: str
) -> None:
    """`sent`, or `not_sent` when there was no SMTP server to send it to."""
    await conn.execute(
        """
        UPDATE notification_log
        SET status = $2, subject = $3, error = NULL, sent_at = now()
        WHERE id = $1
        """,
        notification_id,
        status,
        subject,
    )


async def record_failure(
    conn: asyncpg.Connection,
    notification_id: uuid.UUID,
    *,
    subject: str | None,
    error: str,
    retry_in: float | None,
) -> None:
    """A failed attempt: due again in `retry_in` seconds, or `failed` for good (None)."""
    await conn.execute(
        """
        UPDATE notification_log
        SET status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'retry' END,
            subject = coalesce($2, subject),
            error = $3,
            next_attempt_at = now() + make_interval(secs => coalesce($4::float8, 0))
        WHERE id = $1
        """,
        notification_id,
        subject,
        error,
        retry_in,
    )


async def list_for_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, limit: int = 50
) -> list[Notification]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM notification_log
        WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
        """,  # noqa: S608
        user_id,
        limit,
    )
    return [_notification(r) for r in rows]


async def enqueue_account_mail(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    event: str,
    recipient: str,
    facts: dict[str, object],
    unless_sent_within_seconds: float | None = None,
) -> bool:
    """Queues an account mail (no job); with `unless_sent_within_seconds`, not when
    the same kind of mail was queued for the account that recently. True if queued."""
    status: str = await conn.execute(
        """
        INSERT INTO notification_log (user_id, job_id, event, recipient, facts)
        SELECT $1, NULL, $2, $3, $4::jsonb
        WHERE $5::float8 IS NULL OR NOT EXISTS (
            SELECT 1 FROM notification_log
            WHERE user_id = $1 AND event = $2
              AND created_at > now() - make_interval(secs => $5::float8))
        """,
        user_id,
        event,
        recipient,
        facts,  # the pool's jsonb codec encodes it
        unless_sent_within_seconds,
    )
    return status == "INSERT 0 1"
