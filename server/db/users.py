"""SQL for the `users` table: accounts, roles and quota counters."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from server.auth.model import Access, AccountUsage, User

_COLUMNS = (
    "id, email, password_hash, role, quota_bytes, used_bytes, created_at, email_notifications,"
    " disabled_at, email_verified_at, session_generation, session_kept"
)


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(**dict(row))


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608
    return _user(row)


async def user_exists(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """One index probe: called for every request that carries an access token."""
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id)
    return found


async def access_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> Access | None:
    """Role, disabled, email-verified and session generation of an account, None when
    it is gone: one index probe (and one into `ended_sessions`, usually empty), called
    for every request that carries an access token (so a role change, a disable, a
    verification or ended sessions apply at once, not when the token expires)."""
    row = await conn.fetchrow(
        """SELECT role, disabled_at IS NOT NULL AS disabled,
                  email_verified_at IS NOT NULL AS email_verified,
                  session_generation, session_kept,
                  ARRAY(SELECT session_id FROM ended_sessions e
                        WHERE e.user_id = users.id AND e.until > now()) AS sessions_ended
           FROM users WHERE id = $1""",
        user_id,
    )
    if row is None:
        return None
    return Access(**{**dict(row), "sessions_ended": frozenset(row["sessions_ended"])})


async def end_sessions(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, keep_session: uuid.UUID | None = None
) -> None:
    """Ends the account's access tokens but those of session `keep_session`: access
    tokens issued before (an older `gen`) are refused from now on. The caller revokes
    the refresh tokens in the same transaction."""
    await conn.execute(
        """UPDATE users SET session_generation = session_generation + 1, session_kept = $2
           WHERE id = $1""",
        user_id,
        keep_session,
    )


async def get_user_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    # lower() on both sides matches the unique index users_email_lower_key.
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower($1)",  # noqa: S608
        email,
    )
    return _user(row)


async def insert_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    password_hash: str,
    quota_bytes: int,
    role: str = "user",
    email_verified: bool = False,
) -> User:
    """Raises asyncpg.UniqueViolationError when the email exists in any case."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO users (email, password_hash, role, quota_bytes, email_verified_at)
        VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        email,
        password_hash,
        role,
        quota_bytes,
        email_verified,
    )
    user = _user(row)
    assert user is not None
    return user


async def set_role(conn: asyncpg.Connection, user_id: uuid.UUID, role: str) -> User | None:
    row = await conn.fetchrow(
        f"UPDATE users SET role = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
        user_id,
        role,
    )
    return _user(row)


async def set_password_hash(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str
) -> User | None:
    row = await conn.fetchrow(
        f"UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
        user_id,
        password_hash,
    )
    return _user(row)


async def update_user(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    quota_bytes: int | None = None,
    role: str | None = None,
) -> User | None:
    """Set the fields given (None keeps the stored value); None if there is no such user.

    A quota below `used_bytes` is allowed: nothing is deleted, the user just
    cannot add more until they delete enough.
    """
    row = await conn.fetchrow(
        f"""
        UPDATE users SET quota_bytes = COALESCE($2, quota_bytes), role = COALESCE($3, role)
        WHERE id = $1 RETURNING {_COLUMNS}
        """,  # noqa: S608
        user_id,
        quota_bytes,
        role,
    )
    return _user(row)


async def set_email_notifications(
    conn: asyncpg.Connection, user_id: uuid.UUID, enabled: bool
) -> User | None:
    """The updated account; None when there is no such user."""
    row = await conn.fetchrow(
        f"UPDATE users SET email_notifications = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
        user_id,
        enabled,
    )
    return _user(row)


async def set_disabled(conn: asyncpg.Connection, user_id: uuid.UUID, disabled: bool) -> User | None:
    """Disables (keeping the first instant) or enables the account; None if there is none."""
    row = await conn.fetchrow(
        f"""
        UPDATE users SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, now()) END
        WHERE id = $1 RETURNING {_COLUMNS}
        """,  # noqa: S608
        user_id,
        disabled,
    )
    return _user(row)


async def set_email(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> User | None:
    """A new address, not verified yet; raises asyncpg.UniqueViolationError when
    another account has it."""
    row = await conn.fetchrow(
        f"""
        UPDATE users SET email = $2, email_verified_at = NULL
        WHERE id = $1 RETURNING {_COLUMNS}
        """,  # noqa: S608
        user_id,
        email,
    )
    return _user(row)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_accounts(
    conn: asyncpg.Connection,
    *,
    q: str | None,
    role: str | None,
    disabled: bool | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[AccountUsage]:
    """Newest first, with each account's video count; `q` matches part of the email."""
    qualified = ", ".join("u." + c.strip() for c in _COLUMNS.split(","))
    rows = await conn.fetch(
        f"""
        SELECT {qualified},
               (SELECT count(*) FROM videos v WHERE v.user_id = u.id) AS video_count
        FROM users u
        WHERE ($1::text IS NULL OR u.email ILIKE $1)
          AND ($2::text IS NULL OR u.role = $2)
          AND ($3::boolean IS NULL OR (u.disabled_at IS NOT NULL) = $3)
          AND ($4::timestamptz IS NULL OR (u.created_at, u.id) < ($4, $5::uuid))
        ORDER BY u.created_at DESC, u.id DESC
        LIMIT $6
        """,  # noqa: S608
        None if q is None else _like_pattern(q),
        role,
        disabled,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    result = []
    for row in rows:
        values = dict(row)
        count = values.pop("video_count")
        result.append(AccountUsage(User(**values), count))
    return result


async def count_by_role(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """{role: {"total": n, "disabled": m}}."""
    rows = await conn.fetch(
        """SELECT role, count(*) AS total, count(disabled_at) AS disabled
           FROM users GROUP BY role"""
    )
    return {r["role"]: {"total": r["total"], "disabled": r["disabled"]} for r in rows}


async def mark_email_verified(
    conn: asyncpg.Connection, user_id: uuid.UUID, email: str
) -> User | None:
    """Marks the account verified if its email is still `email` (any case); else None.
    A verification already made keeps its first time."""
    row = await conn.fetchrow(
        f"""
        UPDATE users SET email_verified_at = coalesce(email_verified_at, now())
        WHERE id = $1 AND lower(email) = lower($2) RETURNING {_COLUMNS}
        """,  # noqa: S608
        user_id,
        email,
    )
    return _user(row)
