"""SQL for `audit_log` (sql/016_audit_log.sql): append, page, stream, retention.

The table refuses UPDATE, TRUNCATE and any DELETE but the retention delete
(`delete_older_than`), which names its cutoff in a transaction-local setting
the trigger checks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from server.audit.model import AuditEntry, AuditFilter
from server.db import paging

_COLUMNS = (
    "id, created_at, actor_type, actor_user_id, actor_api_key_id, action, target_type,"
    " target_id, outcome, client_ip, user_agent, request_id, detail"
)


def _entry(row: asyncpg.Record) -> AuditEntry:
    values = dict(row)
    detail = values["detail"]
    values["detail"] = json.loads(detail) if isinstance(detail, str) else dict(detail or {})
    return AuditEntry(**values)


async def insert_entry(
    conn: asyncpg.Connection,
    *,
    actor_type: str,
    actor_user_id: uuid.UUID | None,
    actor_api_key_id: uuid.UUID | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    outcome: str,
    client_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    detail: Mapping[str, Any],
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (actor_type, actor_user_id, actor_api_key_id, action,
                               target_type, target_id, outcome, client_ip, user_agent,
                               request_id, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
        """,
        actor_type,
        actor_user_id,
        actor_api_key_id,
        action,
        target_type,
        target_id,
        outcome,
        client_ip,
        user_agent,
        request_id,
        json.dumps(dict(detail)),
    )


def _where(f: AuditFilter, first: int) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter, with parameters numbered from `first`."""
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${first + len(args) - 1}"))

    if f.actor_user_id is not None:
        add("actor_user_id = ?", f.actor_user_id)
    if f.action is not None:
        if f.action.endswith("."):
            add("starts_with(action, ?)", f.action)
        else:
            add("action = ?", f.action)
    if f.target_type is not None:
        add("target_type = ?", f.target_type)
    if f.target_id is not None:
        add("target_id = ?", f.target_id)
    if f.since is not None:
        add("created_at >= ?", f.since)
    if f.until is not None:
        add("created_at < ?", f.until)
    return (" AND ".join(clauses) or "TRUE"), args


async def list_entries(
    conn: asyncpg.Connection,
    f: AuditFilter,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[AuditEntry]:
    """Newest first; `before` is the (created_at, id) of the previous page's last row."""
    where, args = _where(f, 3)
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM audit_log
        WHERE {where}
          AND ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT {int(limit)}
        """,  # noqa: S608 - columns and clauses are constants; values are parameters
        before[0] if before else None,
        before[1] if before else None,
        *args,
    )
    return [_entry(r) for r in rows]


async def stream_entries(
    conn: asyncpg.Connection, f: AuditFilter, *, batch: int = 1000
) -> AsyncIterator[list[AuditEntry]]:
    """Every matching row, oldest first, `batch` rows at a time through a server-side
    cursor: memory stays at one batch whatever the table's size. Must run inside a
    transaction."""
    where, args = _where(f, 1)
    query = f"SELECT {_COLUMNS} FROM audit_log WHERE {where} ORDER BY created_at, id"  # noqa: S608
    cursor = await conn.cursor(query, *args)
    while rows := await cursor.fetch(batch):
        yield [_entry(r) for r in rows]


async def list_for_user(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[AuditEntry]:
    """What the user did, and what was done to their account, newest first."""
    rows = await paging.newest_first(
        conn,
        columns=_COLUMNS,
        table="audit_log",
        owned_by="actor_user_id = $1 OR (target_type = 'user' AND target_id = $1::text)",
        user_id=user_id,
        limit=limit,
        before=before,
    )
    return [_entry(r) for r in rows]


async def delete_older_than(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """The retention delete: the only DELETE the table's trigger lets through."""
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('frameflow.audit_delete_before', $1, true)", cutoff.isoformat()
        )
        status: str = await conn.execute("DELETE FROM audit_log WHERE created_at < $1", cutoff)
    return int(status.rsplit(" ", 1)[-1])
