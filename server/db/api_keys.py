"""SQL for the `api_keys` table (sql/008_api_keys.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from server.apikeys.model import ApiKey, KeyHolder

_COLUMNS = "id, user_id, name, prefix, scopes, expires_at, created_at, last_used_at"


def _key(row: asyncpg.Record) -> ApiKey:
    values = {name: row[name] for name in _COLUMNS.split(", ")}
    values["scopes"] = tuple(values["scopes"])
    return ApiKey(**values)


async def insert_key(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    name: str,
    prefix: str,
    secret_hash: bytes,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> ApiKey:
    """Raises asyncpg.ForeignKeyViolationError when the owner no longer exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_keys (user_id, name, prefix, secret_hash, scopes, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        user_id,
        name,
        prefix,
        secret_hash,
        list(scopes),
        expires_at,
    )
    return _key(row)


async def list_keys(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ApiKey]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id",  # noqa: S608
        user_id,
    )
    return [_key(r) for r in rows]


async def count_keys_locked(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """The owner's key count, holding a transaction lock on the owner's keys so
    that concurrent creations cannot all pass a cap."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('api_keys:' || $1::text))", str(user_id)
    )
    count: int = await conn.fetchval("SELECT count(*) FROM api_keys WHERE user_id = $1", user_id)
    return count


async def delete_key(conn: asyncpg.Connection, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    status: str = await conn.execute(
        "DELETE FROM api_keys WHERE id = $1 AND user_id = $2", key_id, user_id
    )
    return status == "DELETE 1"


async def delete_user_keys(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Revokes every key of the user (a disabled account); the ids revoked."""
    rows = await conn.fetch("DELETE FROM api_keys WHERE user_id = $1 RETURNING id", user_id)
    return [r["id"] for r in rows]


async def find_by_hash(conn: asyncpg.Connection, secret_hash: bytes) -> KeyHolder | None:
    """One index probe per request that presents a key; the owner's role comes along."""
    row = await conn.fetchrow(
        """
        SELECT k.id, k.user_id, k.name, k.prefix, k.scopes, k.expires_at, k.created_at,
               k.last_used_at, k.secret_hash, u.role, u.disabled_at IS NOT NULL AS disabled,
               u.email_verified_at IS NOT NULL AS email_verified
        FROM api_keys k JOIN users u ON u.id = k.user_id
        WHERE k.secret_hash = $1
        """,
        secret_hash,
    )
    if row is None:
        return None
    return KeyHolder(
        key=_key(row),
        secret_hash=bytes(row["secret_hash"]),
        role=row["role"],
        disabled=row["disabled"],
        email_verified=row["email_verified"],
    )


async def touch_key(conn: asyncpg.Connection, key_id: uuid.UUID, min_interval_s: float) -> None:
    """Sets last_used_at unless another request (or instance) did so recently."""
    await conn.execute(
        """
        UPDATE api_keys SET last_used_at = now()
        WHERE id = $1
          AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
        """,
        key_id,
        min_interval_s,
    )
