"""SQL for `refresh_tokens`: one row per issued refresh token, grouped in families.

A family is one login's chain of rotated tokens; revoking it ends that session
everywhere. Rows are only ever marked (used, revoked), never updated otherwise,
so a replayed token can always be recognised until it expires.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from server.auth.model import RefreshToken

_COLUMNS = "jti, family_id, user_id, expires_at, used_at, revoked_at, created_at"


async def insert_token(
    conn: asyncpg.Connection,
    *,
    jti: uuid.UUID,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        jti,
        family_id,
        user_id,
        expires_at,
    )


async def lock_token(conn: asyncpg.Connection, jti: uuid.UUID) -> RefreshToken | None:
    """The row, locked until the transaction ends: concurrent rotations of one token
    queue here, so exactly one of them sees it unused."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM refresh_tokens WHERE jti = $1 FOR UPDATE",  # noqa: S608
        jti,
    )
    return None if row is None else RefreshToken(**dict(row))


async def mark_used(conn: asyncpg.Connection, jti: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE jti = $1 AND used_at IS NULL", jti
    )


async def revoke_token(conn: asyncpg.Connection, jti: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE jti = $1 AND revoked_at IS NULL", jti
    )


async def revoke_family(
    conn: asyncpg.Connection, family_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> int:
    """Revokes every token of a session; returns how many were still live."""
    status = await conn.execute(
        """
        UPDATE refresh_tokens SET revoked_at = now()
        WHERE family_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2)
        """,
        family_id,
        user_id,
    )
    return _count(status)


async def revoke_user_tokens(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Ends every session of a user (e.g. after a password change)."""
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    return _count(status)


async def revoke_user_sessions(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, keep_family: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Ends every session of a user but `keep_family`; returns the sessions that
    were still live, so their sockets can be closed."""
    rows = await conn.fetch(
        """
        UPDATE refresh_tokens SET revoked_at = now()
        WHERE user_id = $1 AND revoked_at IS NULL
          AND ($2::uuid IS NULL OR family_id <> $2)
        RETURNING family_id
        """,
        user_id,
        keep_family,
    )
    return list(dict.fromkeys(r["family_id"] for r in rows))


async def session_is_live(
    conn: asyncpg.Connection, family_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """True while the session has an unrevoked token (logout and replay revoke them
    all; deleting the user deletes them)."""
    live: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM refresh_tokens
                          WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL)""",
        family_id,
        user_id,
    )
    return live


async def end_access(
    conn: asyncpg.Connection, user_id: uuid.UUID, family_id: uuid.UUID, ttl_seconds: int
) -> None:
    """The session's access tokens are refused from now until the last of them has
    expired (`ttl_seconds` on): read by `users.access_of`."""
    await conn.execute(
        """
        INSERT INTO ended_sessions (user_id, session_id, until)
        VALUES ($1, $2, now() + make_interval(secs => $3))
        ON CONFLICT (user_id, session_id) DO UPDATE SET until = GREATEST(
            ended_sessions.until, EXCLUDED.until)
        """,
        user_id,
        family_id,
        float(ttl_seconds),
    )


async def delete_ended(conn: asyncpg.Connection) -> int:
    """Drops ended sessions whose access tokens have all expired."""
    return _count(await conn.execute("DELETE FROM ended_sessions WHERE until < now()"))


async def delete_expired(conn: asyncpg.Connection) -> int:
    """Drops rows past their expiry: their JWT `exp` already rejects such tokens."""
    status = await conn.execute("DELETE FROM refresh_tokens WHERE expires_at < now()")
    return _count(status)


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 3" or "DELETE 0".
    return int(status.rsplit(" ", 1)[-1])
