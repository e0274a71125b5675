"""Administration: accounts (list, read, role, quota, disable, enable), every user's
jobs, the system summary, and creating admins from the command line.

Every change is put on record in the same transaction that makes it (the
audit row commits or rolls back with it). The account's role and disabled
state are read on every request (`AuthService.authenticate`), so a change
applies at once. Disabling an account also revokes every refresh token and
API key it has, ends its access tokens (`users.end_sessions`: enabling it again
does not bring them back) and, after the commit, closes its WebSockets on every instance
(`on_account_disabled`, the publisher's `account_disabled`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg

from config.settings import Settings
from server.admin.model import SystemSummary
from server.audit.model import SYSTEM, Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.access_cache import AccessCache
from server.auth.model import AccountUsage, AuthUser, User
from server.auth.passwords import PasswordHasher
from server.auth.service import validate_email
from server.db import api_keys, refresh_tokens, summary, users
from server.db import jobs as jobs_db
from server.errors import Conflict, NotFound
from server.jobs.model import Job
from server.logs import get_logger

log = get_logger("frameflow.admin")

AccountDisabled = Callable[[uuid.UUID], None]


def _not_found() -> NotFound:
    return NotFound("No such user", code="user_not_found")


class AdminService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        passwords: PasswordHasher,
        audit: AuditLog,
        settings: Settings,
        access_cache: AccessCache,
        on_account_disabled: AccountDisabled | None = None,
    ) -> None:
        self.pool = pool
        # Forgotten on every change, so that it applies at once in this process.
        self.access_cache = access_cache
        self.passwords = passwords
        self.audit = audit
        self.settings = settings
        self.on_account_disabled = on_account_disabled

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self.pool.acquire() as conn:
            user = await users.get_user(conn, user_id)
        if user is None:
            raise _not_found()
        return user

    async def list_accounts(
        self,
        *,
        q: str | None,
        role: str | None,
        disabled: bool | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[AccountUsage]:
        async with self.pool.acquire() as conn:
            return await users.list_accounts(
                conn, q=q, role=role, disabled=disabled, limit=limit, before=before
            )

    async def update_user(
        self,
        admin: AuthUser,
        user_id: uuid.UUID,
        *,
        quota_bytes: int | None = None,
        role: str | None = None,
        origin: Origin | None = None,
    ) -> User:
        """Sets the fields given (None keeps the stored value)."""
        if user_id == admin.id and role not in (None, "admin"):
            # An admin demoting themselves could leave the server with none.
            raise Conflict(
                "Administrators cannot remove their own admin role", code="cannot_demote_self"
            )
        async with self.pool.acquire() as conn, conn.transaction():
            before = await users.get_user(conn, user_id)
            user = await users.update_user(conn, user_id, quota_bytes=quota_bytes, role=role)
            if before is None or user is None:
                raise _not_found()
            target = Target.user(user_id)
            if before.role != user.role:
                await self.audit.record(
                    "user.role_change",
                    actor=Actor.of(admin),
                    target=target,
                    detail={"from": before.role, "to": user.role},
                    origin=origin,
                    conn=conn,
                )
            if before.quota_bytes != user.quota_bytes:
                await self.audit.record(
                    "user.quota_change",
                    actor=Actor.of(admin),
                    target=target,
                    detail={"from": before.quota_bytes, "to": user.quota_bytes},
                    origin=origin,
                    conn=conn,
                )
        self.access_cache.forget(user_id)
        return user

    async def set_disabled(
        self, admin: AuthUser, user_id: uuid.UUID, disabled: bool, origin: Origin | None = None
    ) -> User:
        """Disable (revoking every refresh token and API key) or enable an account."""
        if disabled and user_id == admin.id:
            raise Conflict(
                "Administrators cannot disable their own account", code="cannot_disable_self"
            )
        revoked_sessions = 0
        revoked_keys: list[uuid.UUID] = []
        async with self.pool.acquire() as conn, conn.transaction():
            before = await users.get_user(conn, user_id)
            user = await users.set_disabled(conn, user_id, disabled)
            if before is None or user is None:
                raise _not_found()
            if disabled:
                revoked_sessions = await refresh_tokens.revoke_user_tokens(conn, user_id)
                # Its access tokens too: re-enabling must not bring them back.
                await users.end_sessions(conn, user_id)
                revoked_keys = await api_keys.delete_user_keys(conn, user_id)
            if before.disabled != disabled or disabled:
                await self.audit.record(
                    "user.disable" if disabled else "user.enable",
                    actor=Actor.of(admin),
                    target=Target.user(user_id),
                    detail={
                        "sessions_revoked": revoked_sessions,
                        "api_keys_revoked": len(revoked_keys),
                    }
                    if disabled
                    else {},
                    origin=origin,
                    conn=conn,
                )
        self.access_cache.forget(user_id)
        if disabled and self.on_account_disabled is not None:
            self.on_account_disabled(user_id)
        log.info("account_disabled" if disabled else "account_enabled", user_id=str(user_id))
        return user

    async def list_jobs(
        self,
        *,
        status: str | None,
        operation: str | None,
        user_id: uuid.UUID | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Job]:
        async with self.pool.acquire() as conn:
            return await jobs_db.list_all_jobs(
                conn,
                status=status,
                operation=operation,
                user_id=user_id,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                before=before,
            )

    async def summary(self) -> SystemSummary:
        async with self.pool.acquire() as conn:
            return await summary.system_summary(conn)

    async def create_admin(self, email: str, password: str) -> User:
        return await self.create_account(email, password, role="admin")

    async def create_account(self, email: str, password: str, *, role: str) -> User:
        """Creates an account with `role`, or gives the existing account with that email
        this role (enabling it if it was disabled).

        Either way the account ends up with this password, so the command doubles as
        an admin password reset; on an existing account its sessions are ended.
        """
        email = validate_email(email)
        password_hash = await self.passwords.hash(password)
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await users.get_user_by_email(conn, email)
            if existing is None:
                user = await users.insert_user(
                    conn,
                    email=email,
                    password_hash=password_hash,
                    quota_bytes=self.settings.default_quota_bytes,
                    role=role,
                    email_verified=True,  # made by the operator, who vouches for it
                )
            else:
                await users.set_password_hash(conn, existing.id, password_hash)
                await users.set_disabled(conn, existing.id, False)
                promoted = await users.set_role(conn, existing.id, role)
                assert promoted is not None  # the row is ours: same transaction
                await refresh_tokens.revoke_user_tokens(conn, existing.id)
                await users.end_sessions(conn, existing.id)
                user = promoted
            await self.audit.record(
                "user.create_cli",
                actor=SYSTEM,
                target=Target.user(user.id),
                detail={"role": role, "existing": existing is not None},
                conn=conn,
            )
        self.access_cache.forget(user.id)
        log.info("admin_created", user_id=str(user.id), promoted=existing is not None, role=role)
        return user
