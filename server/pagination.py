"""Keyset pagination cursors for newest-first lists (videos, jobs).

A cursor is the (created_at, id) of the last row of a page, opaque to
clients (base64url JSON). Anything that doesn't decode is a 400 on `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from server.errors import BadRequest


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


def encode_cursor(row: Keyed) -> str:
    raw = json.dumps([row.created_at.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Ours are ~90 characters; the bound keeps json.loads away from deep nesting.
MAX_CURSOR_CHARS = 256


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(row_id, str):
            raise TypeError("not two strings")
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")  # would not compare with timestamptz
        # As asyncpg will send it: an offset can push a valid local time out of range.
        return when.astimezone(UTC), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, OverflowError):
        raise BadRequest("Invalid cursor", code="invalid_query", field="cursor") from None


K = TypeVar("K", bound=Keyed)


def page_body(rows: Sequence[K], limit: int, render: Callable[[K], Any]) -> dict[str, Any]:
    """`{"items", "next_cursor"}` from rows fetched with `limit + 1`: the extra row,
    dropped here, tells whether there is a next page."""
    page = rows[:limit]
    return {
        "items": [render(row) for row in page],
        "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
    }
