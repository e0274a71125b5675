"""Query-string parsing of the admin lists: each bad value is a 400 `invalid_query`
naming the parameter (pure; the handlers call these)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from server.errors import BadRequest
from server.pagination import decode_cursor

MAX_TEXT_CHARS = 254  # an email's length: longer searches cannot match


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_query", field=name)


def text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT_CHARS:
        raise _bad(name, f"'{name}' is longer than {MAX_TEXT_CHARS} characters")
    return value


def choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name) or None
    if value is not None and value not in choices:
        raise _bad(name, f"'{name}' must be one of {', '.join(choices)}")
    return value


def boolean(query: Mapping[str, str], name: str) -> bool | None:
    value = query.get(name) or None
    if value is None:
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _bad(name, f"'{name}' must be true or false")


def uuid_param(query: Mapping[str, str], name: str) -> uuid.UUID | None:
    value = query.get(name) or None
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _bad(name, f"'{name}' must be a UUID") from None


def instant(query: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is read as UTC."""
    value = query.get(name) or None
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(name, f"'{name}' must be an ISO 8601 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise _bad(name, f"'{name}' is out of range") from None


def cursor(query: Mapping[str, str]) -> tuple[datetime, uuid.UUID] | None:
    raw = query.get("cursor")
    return decode_cursor(raw) if raw else None
