"""SQL for the orphan sweep: which video prefixes something still claims."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from server.object_keys import VideoPrefix


async def claimed_prefixes(
    conn: asyncpg.Connection, candidates: Collection[VideoPrefix]
) -> set[str]:
    """The prefixes among `candidates` that a `videos` row owns (same id and owner),
    or whose deletion is recorded in `pending_deletions` (that step finishes it).

    One query per batch; both lookups use a primary key.
    """
    if not candidates:
        return set()
    rows = await conn.fetch(
        """
        SELECT c.prefix
        FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS c (prefix, user_id, video_id)
        WHERE EXISTS (SELECT 1 FROM videos v WHERE v.id = c.video_id AND v.user_id = c.user_id)
           OR EXISTS (SELECT 1 FROM pending_deletions d WHERE d.prefix = c.prefix)
        """,
        [c.prefix for c in candidates],
        [c.user_id for c in candidates],
        [c.video_id for c in candidates],
    )
    return {r["prefix"] for r in rows}
