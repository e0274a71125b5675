"""The auth domain's records: accounts, who is calling, sessions and token pairs.

`server.db.users` and `server.db.refresh_tokens` build these from rows; the
services and views use them without knowing about SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from server.auth.permissions import role_scopes


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    role: str
    quota_bytes: int
    used_bytes: int
    created_at: datetime
    email_notifications: bool = True
    disabled_at: datetime | None = None
    # None until the owner follows a verification link sent to `email`.
    email_verified_at: datetime | None = None
    # Access tokens of an older generation are refused, but those of session
    # `session_kept` (the one a password change was made in): `server.db.users.end_sessions`.
    session_generation: int = 0
    session_kept: uuid.UUID | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class Access(NamedTuple):
    """What a request needs to know about its account, read per request."""

    role: str
    disabled: bool
    email_verified: bool
    session_generation: int = 0
    session_kept: uuid.UUID | None = None
    sessions_ended: frozenset[uuid.UUID] = frozenset()  # by a logout or a replay

    def admits(self, generation: int, session_id: uuid.UUID | None) -> bool:
        """Whether an access token of `generation`, issued in `session_id`, is still good:
        a password reset or change, or a disable, ended every session it did not keep;
        a logout, or a refresh token replayed, ended its own."""
        if session_id is not None and session_id in self.sessions_ended:
            return False
        return generation >= self.session_generation or (
            session_id is not None and session_id == self.session_kept
        )


@dataclass(frozen=True)
class AccountUsage:
    """An account as the admin list shows it: the account and what it stores."""

    user: User
    video_count: int

    @property
    def created_at(self) -> datetime:  # the list's cursor key
        return self.user.created_at

    @property
    def id(self) -> uuid.UUID:
        return self.user.id


@dataclass(frozen=True)
class AuthUser:
    """The caller, as proven by an access token or an API key of an account that still exists.

    `scopes` is what this caller may do: every scope of the role for a token
    (the default), the key's own scopes for a key. `api_key_id` names the key,
    `session_id` the refresh-token family of a token, `token_expires_at` its
    expiry. `email_verified` feeds the one check of what an unverified account
    may do (`auth_middleware`).
    """

    id: uuid.UUID
    role: str
    # None (the default) means every scope of the role; __post_init__ fills it in.
    scopes: frozenset[str] = field(default=None)  # type: ignore[arg-type]
    api_key_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    email_verified: bool = True
    # An access token's `exp` (epoch seconds); None for API keys.
    token_expires_at: int | None = None

    def __post_init__(self) -> None:
        if self.scopes is None:
            object.__setattr__(self, "scopes", role_scopes(self.role))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class RefreshToken:
    jti: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class LoginResult:
    """A new session, and the known-device token that marks this client for the account."""

    tokens: TokenPair
    device_token: str
    device_ttl_seconds: int
