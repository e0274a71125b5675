"""SQL for `presets`."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from server.jobs.steps import OperationStep
from server.presets.model import Preset

_COLUMNS = "id, name, operations, created_at, updated_at"


def _preset(row: asyncpg.Record) -> Preset:
    return Preset(
        id=row["id"],
        name=row["name"],
        steps=[OperationStep.model_validate(s) for s in row["operations"]],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_preset(
    conn: asyncpg.Connection, user_id: uuid.UUID, name: str, operations: list[dict[str, Any]]
) -> Preset | None:
    """The new preset, or None when the user already has one of that name."""
    row = await conn.fetchrow(
        f"""INSERT INTO presets (id, user_id, name, operations) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, name) DO NOTHING RETURNING {_COLUMNS}""",  # noqa: S608
        uuid.uuid4(),
        user_id,
        name,
        operations,
    )
    return _preset(row) if row else None


async def count_presets(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM presets WHERE user_id = $1", user_id))


async def get_preset(conn: asyncpg.Connection, user_id: uuid.UUID, name: str) -> Preset | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM presets WHERE user_id = $1 AND name = $2",  # noqa: S608
        user_id,
        name,
    )
    return _preset(row) if row else None


async def list_presets(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Preset]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM presets WHERE user_id = $1 ORDER BY name",  # noqa: S608
        user_id,
    )
    return [_preset(r) for r in rows]


async def replace_preset(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    name: str,
    new_name: str,
    operations: list[dict[str, Any]],
) -> Preset | None:
    """None when there is no such preset. A UniqueViolationError when `new_name` is taken."""
    row = await conn.fetchrow(
        f"""UPDATE presets SET name = $3, operations = $4, updated_at = now()
            WHERE user_id = $1 AND name = $2 RETURNING {_COLUMNS}""",  # noqa: S608
        user_id,
        name,
        new_name,
        operations,
    )
    return _preset(row) if row else None


async def delete_preset(conn: asyncpg.Connection, user_id: uuid.UUID, name: str) -> bool:
    result = await conn.execute(
        "DELETE FROM presets WHERE user_id = $1 AND name = $2", user_id, name
    )
    return bool(result.endswith(" 1"))
