"""The JSON of an API key: never its secret, except once in the answer that created it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.apikeys.model import ApiKey, NewApiKey


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": _time(key.expires_at),
        "created_at": key.created_at.isoformat(),
        "last_used_at": _time(key.last_used_at),
    }


def new_api_key_json(new: NewApiKey) -> dict[str, Any]:
    return {**api_key_json(new.key), "secret": new.secret}
