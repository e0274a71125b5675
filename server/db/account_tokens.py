"""SQL for `account_tokens`: single-use verification and reset tokens, by hash."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from server.recovery.model import AccountToken

_COLUMNS = "id, user_id, purpose, email, expires_at, used_at, created_at"


async def insert_token(
    conn: asyncpg.Connection,
    *,
    token_id: uuid.UUID,
    user_id: uuid.UUID,
    purpose: str,
    token_hash: bytes,
    email: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO account_tokens (id, user_id, purpose, token_hash, email, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        token_id,
        user_id,
        purpose,
        token_hash,
        email,
        expires_at,
    )


async def lock_by_hash(conn: asyncpg.Connection, token_hash: bytes) -> AccountToken | None:
    """The token's row, locked until the transaction ends: two uses of one token
    queue here, and only the first finds it unused."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM account_tokens WHERE token_hash = $1 FOR UPDATE",  # noqa: S608
        token_hash,
    )
    return None if row is None else AccountToken(**dict(row))


async def use_all(conn: asyncpg.Connection, user_id: uuid.UUID, purpose: str) -> int:
    """Spends every unused token of a kind: one use ends all links sent before it."""
    status: str = await conn.execute(
        """
        UPDATE account_tokens SET used_at = now()
        WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL
        """,
        user_id,
        purpose,
    )
    return int(status.rsplit(" ", 1)[-1])


async def count_expired(conn: asyncpg.Connection, expired_before: datetime) -> int:
    """Tokens that expired before `expired_before` (what `delete_expired` would remove)."""
    found: int = await conn.fetchval(
        "SELECT count(*) FROM account_tokens WHERE expires_at < $1", expired_before
    )
    return found


async def delete_expired(conn: asyncpg.Connection, expired_before: datetime) -> int:
    """Drops tokens that expired before `expired_before`, used or not: a link
    presented after that is `token_invalid`, like one never sent."""
    status: str = await conn.execute(
        "DELETE FROM account_tokens WHERE expires_at < $1", expired_before
    )
    return int(status.rsplit(" ", 1)[-1])
