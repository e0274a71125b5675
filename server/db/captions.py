"""SQL for `captions`."""

from __future__ import annotations

import uuid

import asyncpg

from server.captions.model import Caption

_COLUMNS = (
    "video_id, language, label, source_format, cue_count, octet_length(vtt) AS size, created_at"
)


def _caption(row: asyncpg.Record) -> Caption:
    return Caption(**dict(row))


async def upsert_caption(
    conn: asyncpg.Connection,
    *,
    video_id: uuid.UUID,
    language: str,
    label: str,
    vtt: str,
    source_format: str,
    cue_count: int,
) -> Caption:
    """Add the language's captions, or replace them."""
    row = await conn.fetchrow(
        f"""INSERT INTO captions (video_id, language, label, vtt, source_format, cue_count)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (video_id, language) DO UPDATE SET label = EXCLUDED.label,
                vtt = EXCLUDED.vtt, source_format = EXCLUDED.source_format,
                cue_count = EXCLUDED.cue_count, created_at = now()
            RETURNING {_COLUMNS}""",  # noqa: S608 - column list is a constant
        video_id,
        language,
        label,
        vtt,
        source_format,
        cue_count,
    )
    assert row is not None
    return _caption(row)


async def list_captions(conn: asyncpg.Connection, video_id: uuid.UUID) -> list[Caption]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM captions WHERE video_id = $1 ORDER BY language",  # noqa: S608
        video_id,
    )
    return [_caption(r) for r in rows]


async def get_vtt(
    conn: asyncpg.Connection, video_id: uuid.UUID, language: str
) -> tuple[Caption, str] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, vtt FROM captions WHERE video_id = $1 AND language = $2",  # noqa: S608
        video_id,
        language,
    )
    if row is None:
        return None
    values = dict(row)
    vtt = values.pop("vtt")
    return Caption(**values), vtt


async def delete_caption(conn: asyncpg.Connection, video_id: uuid.UUID, language: str) -> bool:
    result = await conn.execute(
        "DELETE FROM captions WHERE video_id = $1 AND language = $2", video_id, language
    )
    return bool(result.endswith(" 1"))
