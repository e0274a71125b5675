"""The keyset page of a user's rows, newest first: the one query behind the cursor lists.

Each list orders by (created_at, id), descending, and a cursor is the pair of
the previous page's last row (`server.pagination` makes and reads it). The
SQL fragments are the callers' constants, never request input.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def newest_first(
    conn: asyncpg.Connection,
    *,
    columns: str,
    table: str,
    owned_by: str,
    user_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[asyncpg.Record]:
    """Up to `limit` rows of `table` for which `owned_by` (a condition on $1, the
    user's id) holds, newest first, after `before`: (created_at, id) of the last
    row of the previous page."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT {columns} FROM {table}
        WHERE ({owned_by})
          AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,  # noqa: S608 - constant fragments only
        user_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return rows
