"""The audit domain's records: who acted (`Actor`), on what (`Target`), from where
(`Origin`), and a stored row (`AuditEntry`).

Action names are stable strings, listed in `ACTIONS` (the README's "Audit log"
section names each); a new one is added here first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from server.auth.model import AuthUser

ActorType = Literal["user", "api_key", "system", "anonymous"]
Outcome = Literal["success", "failure", "denied"]
ACTOR_TYPES: Final = ("user", "api_key", "system", "anonymous")
OUTCOMES: Final = ("success", "failure", "denied")

# Every action recorded.
ACTIONS: Final = (
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.refresh_reuse",
    "apikey.create",
    "apikey.revoke",
    "user.role_change",
    "user.quota_change",
    "user.disable",
    "user.enable",
    "user.create_cli",
    "video.delete",
    "webhook.create",
    "webhook.delete",
    "admin.audit_export",
    "credits.change",
    "auth.register",
    "password.change",
    "password.reset_requested",
    "password.reset",
    "email.verify",
    "email.change",
)


@dataclass(frozen=True)
class Actor:
    """Who acted: a user (password session), an API key (its user and key id), the
    system (the sweep, the command line), or nobody known (a failed login)."""

    type: ActorType
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @classmethod
    def of(cls, caller: AuthUser) -> Actor:
        if caller.api_key_id is not None:
            return cls("api_key", caller.id, caller.api_key_id)
        return cls("user", caller.id)

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Actor:
        return cls("user", user_id)


SYSTEM: Final = Actor("system")
ANONYMOUS: Final = Actor("anonymous")


@dataclass(frozen=True)
class Target:
    type: str  # "user", "api_key", "video", "webhook", "audit"
    id: str | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Target:
        return cls("user", str(user_id))


@dataclass(frozen=True)
class Origin:
    """Where a request came from; built by the HTTP layer (`audit.origin.origin_of`)."""

    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


NO_ORIGIN: Final = Origin()


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    created_at: datetime
    actor_type: str
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditFilter:
    """What an admin's audit query narrows to (None: any)."""

    actor_user_id: uuid.UUID | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("auth.")
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
