"""Administration: reading accounts, changing quotas and roles, creating admins.

A role change applies to access tokens issued from then on (a refresh reads
the role from the database); tokens already out keep their role until they
expire (FRAMEFLOW_ACCESS_TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

import uuid

import asyncpg

from config.settings import Settings
from server.auth.model import AuthUser, User
from server.auth.passwords import PasswordHasher
from server.auth.service import validate_email
from server.db import refresh_tokens, users
from server.errors import Conflict, NotFound
from server.logs import get_logger

log = get_logger("frameflow.admin")


def _not_found() -> NotFound:
    return NotFound("No such user", code="user_not_found")


class AdminService:
    def __init__(
        self, *, pool: asyncpg.Pool, passwords: PasswordHasher, settings: Settings
    ) -> None:
        self.pool = pool
        self.passwords = passwords
        self.settings = settings

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self.pool.acquire() as conn:
            user = await users.get_user(conn, user_id)
        if user is None:
            raise _not_found()
        return user

    async def update_user(
        self,
        admin: AuthUser,
        user_id: uuid.UUID,
        *,
        quota_bytes: int | None = None,
        role: str | None = None,
    ) -> User:
        """Sets the fields given (None keeps the stored value)."""
        if user_id == admin.id and role not in (None, "admin"):
            # An admin demoting themselves could leave the server with none.
            raise Conflict(
                "Administrators cannot remove their own admin role", code="cannot_demote_self"
            )
        async with self.pool.acquire() as conn:
            user = await users.update_user(conn, user_id, quota_bytes=quota_bytes, role=role)
        if user is None:
            raise _not_found()
        return user

    async def create_admin(self, email: str, password: str) -> User:
        """Creates an administrator, or promotes the existing account with that email.

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
                    role="admin",
                    email_verified=True,  # made by the operator, who vouches for it
                )
            else:
                await users.set_password_hash(conn, existing.id, password_hash)
                promoted = await users.set_role(conn, existing.id, "admin")
                assert promoted is not None  # the row is ours: same transaction
                await refresh_tokens.revoke_user_tokens(conn, existing.id)
                user = promoted
        log.info("admin_created", user_id=str(user.id), promoted=existing is not None)
        return user
