"""SQL for `webhooks` and `webhook_deliveries`.

Delivery rows are inserted by a trigger when a job ends (sql/005_webhooks.sql);
this module registers hooks, claims due deliveries and records attempts.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from server.webhooks.model import Delivery, Webhook

_HOOK = "id, user_id, url, events, secret, created_at"
_DELIVERY = (
    "id, webhook_id, event, data, status, attempts, response_status, error, "
    "next_attempt_at, last_attempt_at, created_at"
)


def _hook(row: asyncpg.Record) -> Webhook:
    values = dict(row)
    values["events"] = list(values["events"])
    return Webhook(**values)


def _delivery(row: asyncpg.Record) -> Delivery:
    values = dict(row)
    if isinstance(values["data"], str):
        values["data"] = json.loads(values["data"])
    return Delivery(**values)


async def insert_webhook(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, url: str, events: list[str], secret: str
) -> Webhook:
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhooks (user_id, url, events, secret) VALUES ($1, $2, $3, $4)
        RETURNING {_HOOK}
        """,  # noqa: S608
        user_id,
        url,
        events,
        secret,
    )
    assert row is not None
    return _hook(row)


async def lock_owner(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Locks the user's row until the transaction ends; False if there is no such user.

    Serialises one user's registrations, so a per-user cap holds under concurrency.
    """
    found = await conn.fetchval("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    return found is not None


async def count_webhooks(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM webhooks WHERE user_id = $1", user_id)
    return count


async def list_webhooks(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Webhook]:
    rows = await conn.fetch(
        f"SELECT {_HOOK} FROM webhooks WHERE user_id = $1 ORDER BY created_at DESC, id",  # noqa: S608
        user_id,
    )
    return [_hook(r) for r in rows]


async def get_webhook(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, user_id: uuid.UUID | None
) -> Webhook | None:
    """`user_id` None: any owner (the sender); else only that user's (404 otherwise)."""
    row = await conn.fetchrow(
        f"""
        SELECT {_HOOK} FROM webhooks
        WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
        """,  # noqa: S608
        webhook_id,
        user_id,
    )
    return None if row is None else _hook(row)


async def delete_webhook(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    status = await conn.execute(
        "DELETE FROM webhooks WHERE id = $1 AND user_id = $2", webhook_id, user_id
    )
    return status == "DELETE 1"


async def list_deliveries(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, limit: int
) -> list[Delivery]:
    rows = await conn.fetch(
        f"""
        SELECT {_DELIVERY} FROM webhook_deliveries
        WHERE webhook_id = $1 ORDER BY created_at DESC, id LIMIT $2
        """,  # noqa: S608
        webhook_id,
        limit,
    )
    return [_delivery(r) for r in rows]


async def claim_due(
    conn: asyncpg.Connection, *, limit: int, lease_seconds: float
) -> list[Delivery]:
    """Like the email outbox: claimed rows are `sending` until their lease
    ends, so a sender that dies mid-request leaves them due again."""
    rows = await conn.fetch(
        f"""
        UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1,
            status = 'sending',
            last_attempt_at = now(),
            next_attempt_at = now() + make_interval(secs => $2)
        WHERE d.id IN (
            SELECT id FROM webhook_deliveries
            WHERE status IN ('pending', 'sending', 'retry') AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {_DELIVERY}
        """,  # noqa: S608
        limit,
        lease_seconds,
    )
    return [_delivery(r) for r in rows]


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: uuid.UUID,
    *,
    delivered: bool,
    response_status: int | None,
    error: str | None,
    retry_in: float | None,
) -> None:
    """Delivered; or failed and due again in `retry_in` s; or failed for good (None)."""
    status = "delivered" if delivered else ("failed" if retry_in is None else "retry")
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET status = $2, response_status = $3, error = $4,
            next_attempt_at = now() + make_interval(secs => coalesce($5::float8, 0))
        WHERE id = $1
        """,
        delivery_id,
        status,
        response_status,
        error,
        retry_in,
    )
