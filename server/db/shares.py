"""SQL for `shares`, and the newest outputs a share link may serve."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from server.jobs.model import OutputFile
from server.shares.model import Share

_COLUMNS = (
    "id, token, video_id, user_id, exposes, allow_download, password_hash, expires_at,"
    " revoked_at, view_count, created_at"
)
_QUALIFIED = ", ".join("s." + c.strip() for c in _COLUMNS.split(","))


def _share(row: asyncpg.Record) -> Share:
    values = dict(row)
    values["exposes"] = tuple(values["exposes"])
    return Share(**values)


async def insert_share(
    conn: asyncpg.Connection,
    *,
    id: uuid.UUID,
    token: str,
    video_id: uuid.UUID,
    user_id: uuid.UUID,
    exposes: tuple[str, ...],
    allow_download: bool,
    password_hash: str | None,
    expires_in_seconds: int | None,
) -> Share:
    # Expiry from the database clock, which every instance shares.
    row = await conn.fetchrow(
        f"""INSERT INTO shares (id, token, video_id, user_id, exposes, allow_download,
                                password_hash, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7,
                    CASE WHEN $8::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => $8::float8) END)
            RETURNING {_COLUMNS}""",  # noqa: S608 - constant column list
        id,
        token,
        video_id,
        user_id,
        list(exposes),
        allow_download,
        password_hash,
        None if expires_in_seconds is None else float(expires_in_seconds),
    )
    assert row is not None
    return _share(row)


async def list_shares(
    conn: asyncpg.Connection, video_id: uuid.UUID, user_id: uuid.UUID
) -> list[Share]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM shares WHERE video_id = $1 AND user_id = $2
            ORDER BY created_at DESC, id DESC""",  # noqa: S608
        video_id,
        user_id,
    )
    return [_share(r) for r in rows]


async def revoke_share(
    conn: asyncpg.Connection, share_id: uuid.UUID, video_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Revoke (idempotent); False when the user has no such share of that video."""
    row = await conn.fetchval(
        """UPDATE shares SET revoked_at = coalesce(revoked_at, now())
           WHERE id = $1 AND video_id = $2 AND user_id = $3 RETURNING id""",
        share_id,
        video_id,
        user_id,
    )
    return row is not None


async def live_share(conn: asyncpg.Connection, token: str) -> Share | None:
    """The share behind `token` if it is neither revoked nor expired (database clock)
    and its owner's account is not disabled: the same query, so no extra round trip."""
    row = await conn.fetchrow(
        f"""SELECT {_QUALIFIED} FROM shares s JOIN users u ON u.id = s.user_id
            WHERE s.token = $1 AND s.revoked_at IS NULL
              AND (s.expires_at IS NULL OR s.expires_at > now())
              AND u.disabled_at IS NULL""",  # noqa: S608
        token,
    )
    return _share(row) if row else None


async def count_view(conn: asyncpg.Connection, share_id: uuid.UUID) -> None:
    await conn.execute("UPDATE shares SET view_count = view_count + 1 WHERE id = $1", share_id)


async def newest_output(
    conn: asyncpg.Connection, video_id: uuid.UUID, operation: str, name: str
) -> tuple[OutputFile, datetime] | None:
    """`name` from the newest succeeded `operation` job of the video, with that job's
    finish time; None when there is none."""
    row = await conn.fetchrow(
        """SELECT o.name, o.storage_key, o.size, o.content_type, j.finished_at
           FROM jobs j JOIN job_outputs o ON o.job_id = j.id
           WHERE j.video_id = $1 AND j.operation = $2 AND j.status = 'succeeded'
             AND o.name = $3
           ORDER BY j.finished_at DESC NULLS LAST, j.id DESC LIMIT 1""",
        video_id,
        operation,
        name,
    )
    if row is None:
        return None
    output = OutputFile(row["name"], row["storage_key"], row["size"], row["content_type"])
    return output, row["finished_at"]
