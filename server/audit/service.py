"""`AuditLog`: the one way anything is put on record, and the ways to read it back.

`record` is the only writer. Give it `conn` to write inside the caller's
transaction (the row then commits or rolls back with the change it
describes); without it, it uses a connection of its own. `detail` is a small
JSON object that never holds a secret: a key that names one (password,
secret, token) is refused with ValueError — a bug in the caller, caught by
the tests —, and a value that looks like one (an `ff_` key, a JWT: say, a key
pasted into a login form's email field) is stored as "[redacted]".

Reads: a page for admins (filters, cursor), a page of a user's own events,
and the export, streamed from a server-side cursor so that memory stays flat
however many rows match. Retention is the sweep's: `delete_expired` removes
rows older than FRAMEFLOW_AUDIT_RETENTION_DAYS, the only delete the table's
trigger allows.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from server.audit.model import (
    ACTIONS,
    NO_ORIGIN,
    Actor,
    AuditEntry,
    AuditFilter,
    Origin,
    Outcome,
    Target,
)
from server.db import audit as audit_db
from server.logs import get_logger

log = get_logger("frameflow.audit")

MAX_DETAIL_KEYS = 20
MAX_DETAIL_STRING = 512
_SECRET_KEY = re.compile(r"password|secret|token|authorization|cookie", re.IGNORECASE)
# An API key secret (not its shown prefix) or a JWT.
_SECRET_VALUE = re.compile(r"^(ff_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.)")


REDACTED = "[redacted]"


class SecretInDetail(ValueError):
    """`detail` has a key that names a credential."""


def looks_like_secret(value: str) -> bool:
    return _SECRET_VALUE.match(value) is not None


def check_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    if len(detail) > MAX_DETAIL_KEYS:
        raise ValueError("audit detail has too many keys")
    checked: dict[str, Any] = {}
    for key, value in detail.items():
        if _SECRET_KEY.search(key):
            raise SecretInDetail(f"audit detail key {key!r} names a secret")
        if isinstance(value, str):
            value = REDACTED if looks_like_secret(value) else value[:MAX_DETAIL_STRING]
        elif isinstance(value, Mapping):
            value = check_detail(value)
        checked[key] = value
    return checked


class AuditLog:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        action: str,
        *,
        actor: Actor,
        target: Target | None = None,
        outcome: Outcome = "success",
        detail: Mapping[str, Any] | None = None,
        origin: Origin | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Append one row. `origin` comes from the request (`audit.origin.origin_of`)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}: add it to audit.model.ACTIONS")
        origin = origin or NO_ORIGIN
        values: dict[str, Any] = {
            "actor_type": actor.type,
            "actor_user_id": actor.user_id,
            "actor_api_key_id": actor.api_key_id,
            "action": action,
            "target_type": None if target is None else target.type,
            "target_id": None if target is None else target.id,
            "outcome": outcome,
            "client_ip": origin.client_ip,
            "user_agent": origin.user_agent,
            "request_id": origin.request_id,
            "detail": check_detail(detail or {}),
        }
        if conn is not None:
            await audit_db.insert_entry(conn, **values)
        else:
            async with self._pool.acquire() as own:
                await audit_db.insert_entry(own, **values)
        log.info("audit", action=action, outcome=outcome, actor=actor.type)

    async def page(
        self, f: AuditFilter, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[AuditEntry]:
        async with self._pool.acquire() as conn:
            return await audit_db.list_entries(conn, f, limit=limit, before=before)

    async def for_user(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[AuditEntry]:
        async with self._pool.acquire() as conn:
            return await audit_db.list_for_user(conn, user_id, limit=limit, before=before)

    @contextlib.asynccontextmanager
    async def export(self, f: AuditFilter) -> AsyncIterator[AsyncIterator[list[AuditEntry]]]:
        """The matching rows, oldest first, in batches from a server-side cursor held
        open (one connection, one read-only transaction) while the caller iterates."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            yield audit_db.stream_entries(conn, f)

    async def delete_expired(self, now: datetime, retention_days: int) -> int:
        """Rows older than the retention, deleted; 0 when retention is off (0 days)."""
        if retention_days <= 0:
            return 0
        async with self._pool.acquire() as conn:
            return await audit_db.delete_older_than(conn, now - timedelta(days=retention_days))
