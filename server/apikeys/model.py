"""The API key domain's records; `server.db.api_keys` builds them from rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class KeyHolder:
    """A key found by its secret's hash, with what the check needs of its owner."""

    key: ApiKey
    secret_hash: bytes
    role: str
    disabled: bool = False
    email_verified: bool = True


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the only time its secret exists outside the caller."""

    key: ApiKey
    secret: str
