"""API keys: create, list, revoke, and resolve a presented secret to its caller.

A secret is `ff_` and 256 random bits (URL-safe base64); only its SHA-256 is
stored, so a database leak yields no usable key. Every request that presents
a key looks it up again (one index probe joined to its owner): a revoked key,
an expired one or one whose owner was deleted is refused at once, and the
owner's current role narrows the key's scopes. `last_used_at` is written at
most once a minute per key, so a busy key costs one write a minute, not one
per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from server.apikeys.model import ApiKey, NewApiKey
from server.audit.model import Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.model import AuthUser
from server.auth.permissions import ADMIN, SCOPES, role_scopes
from server.auth.tokens import invalid_token, token_expired
from server.db import api_keys
from server.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

SECRET_PREFIX = "ff_"  # noqa: S105 - a marker, not a secret
SECRET_BYTES = 32  # 256 bits
SHOWN_PREFIX_CHARS = len(SECRET_PREFIX) + 8
MAX_KEYS_PER_USER = 100
TOUCH_INTERVAL_SECONDS = 60.0
_TOUCH_MEMORY = 10_000  # keys remembered per process before the memory starts over


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def looks_like_key(token: str) -> bool:
    return token.startswith(SECRET_PREFIX)


# Called with (user id, key id) after a key is revoked, so sockets it opened close.
KeyRevoked = Callable[[uuid.UUID, uuid.UUID], None]


class ApiKeyService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        audit: AuditLog,
        on_revoked: KeyRevoked | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.audit = audit
        self.on_revoked = on_revoked
        self._clock = clock
        self._touched: dict[uuid.UUID, float] = {}  # key id → when this process last wrote

    async def create(
        self,
        owner: AuthUser,
        *,
        name: str,
        scopes: list[str],
        expires_at: datetime | None,
        origin: Origin | None = None,
    ) -> NewApiKey:
        wanted = sorted(set(scopes), key=SCOPES.index)
        if ADMIN in wanted and ADMIN not in role_scopes(owner.role):
            raise Forbidden(
                "Only administrators can create keys with the 'admin' scope",
                code="scope_not_allowed",
                scope=ADMIN,
            )
        beyond = [s for s in wanted if s not in role_scopes(owner.role)]
        if beyond:  # a viewer's keys read, like the viewer
            raise Forbidden(
                f"The {owner.role} role cannot create keys with the '{beyond[0]}' scope",
                code="scope_not_allowed",
                scope=beyond[0],
            )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise BadRequest(
                "'expires_at' must be in the future", code="invalid_field", field="expires_at"
            )
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        async with self.pool.acquire() as conn, conn.transaction():
            if await api_keys.count_keys_locked(conn, owner.id) >= MAX_KEYS_PER_USER:
                raise Conflict(
                    f"An account can have at most {MAX_KEYS_PER_USER} API keys",
                    code="too_many_api_keys",
                )
            try:
                key = await api_keys.insert_key(
                    conn,
                    user_id=owner.id,
                    name=name,
                    prefix=secret[:SHOWN_PREFIX_CHARS],
                    secret_hash=hash_secret(secret),
                    scopes=wanted,
                    expires_at=expires_at,
                )
            except asyncpg.ForeignKeyViolationError:
                raise invalid_token() from None  # the account was deleted mid-request
            await self.audit.record(
                "apikey.create",
                actor=Actor.of(owner),
                target=Target("api_key", str(key.id)),
                detail={"name": name, "prefix": key.prefix, "scopes": list(key.scopes)},
                origin=origin,
                conn=conn,
            )
        return NewApiKey(key=key, secret=secret)

    async def list_keys(self, user_id: uuid.UUID) -> list[ApiKey]:
        async with self.pool.acquire() as conn:
            return await api_keys.list_keys(conn, user_id)

    async def revoke(
        self, caller: AuthUser, key_id: uuid.UUID, origin: Origin | None = None
    ) -> None:
        """Revokes one of the caller's keys; sockets that authenticated with it close."""
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await api_keys.delete_key(conn, caller.id, key_id)
            if not deleted:
                raise NotFound("No such API key", code="api_key_not_found")
            await self.audit.record(
                "apikey.revoke",
                actor=Actor.of(caller),
                target=Target("api_key", str(key_id)),
                origin=origin,
                conn=conn,
            )
        if self.on_revoked is not None:
            self.on_revoked(caller.id, key_id)

    async def authenticate(self, secret: str) -> AuthUser:
        """The caller a key secret names; 401 when unknown, revoked, expired or orphaned."""
        digest = hash_secret(secret)
        async with self.pool.acquire() as conn:
            holder = await api_keys.find_by_hash(conn, digest)
            # The lookup is by hash; the compare guards against any index oddity.
            if holder is None or not hmac.compare_digest(holder.secret_hash, digest):
                raise invalid_token("The API key is invalid or has been revoked")
            if holder.disabled:  # its keys were revoked; this guards a race
                raise Unauthorized("This account has been disabled", code="account_disabled")
            key = holder.key
            if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
                raise token_expired()
            if self._due_for_touch(key.id):
                await api_keys.touch_key(conn, key.id, TOUCH_INTERVAL_SECONDS)
        scopes = frozenset(key.scopes) & role_scopes(holder.role)
        return AuthUser(
            id=key.user_id,
            role=holder.role,
            scopes=scopes,
            api_key_id=key.id,
            email_verified=holder.email_verified,
        )

    def _due_for_touch(self, key_id: uuid.UUID) -> bool:
        now = self._clock()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return False
        if len(self._touched) >= _TOUCH_MEMORY:
            self._touched.clear()
        self._touched[key_id] = now
        return True
