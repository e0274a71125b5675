"""SQL for `workers` (sql/015_roles_admin.sql): one heartbeat row per job runner."""

from __future__ import annotations

import asyncpg


async def beat(conn: asyncpg.Connection, worker_id: str, concurrency: int, running: int) -> None:
    """Upserts the runner's row: one cheap write per heartbeat interval."""
    await conn.execute(
        """
        INSERT INTO workers (worker_id, concurrency, running) VALUES ($1, $2, $3)
        ON CONFLICT (worker_id) DO UPDATE
        SET concurrency = EXCLUDED.concurrency, running = EXCLUDED.running, seen_at = now()
        """,
        worker_id,
        concurrency,
        running,
    )


async def forget(conn: asyncpg.Connection, worker_id: str) -> None:
    await conn.execute("DELETE FROM workers WHERE worker_id = $1", worker_id)


async def delete_stale(conn: asyncpg.Connection, older_than_seconds: float) -> int:
    """Rows of runners not seen for a long time (killed without a clean stop)."""
    status: str = await conn.execute(
        "DELETE FROM workers WHERE seen_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(status.rsplit(" ", 1)[-1])
