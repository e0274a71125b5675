"""Account and session rules: register, login, refresh rotation, logout, who is calling.

Sessions are refresh-token families. Each refresh spends the presented token
and issues the next one in the same family; a spent token presented again
means it was copied, so the whole family is revoked and its holder signed out.

Every access token is checked against the accounts that still exist
(`authenticate`): a token outliving its account is a 401 everywhere, not a
foreign-key error or an empty list. Access tokens name their family (`sid`);
when one ends, `on_session_ended` is told after the commit, so live
connections of that session close at once, and its access tokens are refused
from then on (`ended_sessions`). They also carry the account's session
generation (`gen`): the account check that reads role and disabled reads it
too, and refuses tokens of sessions ended in bulk (`users.end_sessions`).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import asyncpg

from config.settings import Settings
from server.apikeys.service import ApiKeyService, looks_like_key
from server.audit.model import ANONYMOUS, Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.access_cache import AccessCache
from server.auth.devices import account_key
from server.auth.model import Access, AuthUser, LoginResult, TokenPair, User
from server.auth.passwords import PasswordHasher
from server.auth.tokens import (
    INVALID_TOKEN_HEADER,
    AccessClaims,
    TokenService,
    invalid_token,
    token_expired,
)
from server.db import refresh_tokens, users
from server.errors import BadRequest, Forbidden, Unauthorized
from server.logs import get_logger

if TYPE_CHECKING:  # recovery imports validate_email from here
    from server.recovery.service import RecoveryService

# Called with (user id, session id) when a session ends.
SessionEnded = Callable[[uuid.UUID, uuid.UUID], None]

log = get_logger("frameflow.auth")

# Accounts remembered by `authenticate` at once (a bound on memory, not on time).

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, less the brackets


def validate_email(email: str) -> str:
    """The trimmed address, or a 400 "invalid_email". Deliberately loose: the
    only real check of an address is mail reaching it."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    ok = (
        0 < len(email) <= MAX_EMAIL_LENGTH
        and at == "@"
        and "@" not in local
        and bool(local)
        and "." in domain
        and all(domain.split("."))  # no empty label: "a@.com", "a@x..com", "a@x."
        # Spaces, controls, format characters and lone surrogates: none belong
        # in an address, and NUL or surrogates would fail in PostgreSQL.
        and not any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in email)
    )
    if not ok:
        raise BadRequest("The email address is not valid", code="invalid_email")
    return email


def _invalid_credentials() -> Unauthorized:
    return Unauthorized("The email or password is incorrect", code="invalid_credentials")


def account_disabled() -> Unauthorized:
    """A credential of a disabled account: refused on every route and socket."""
    return Unauthorized("This account has been disabled", code="account_disabled")


def session_ended() -> Unauthorized:
    """An access token of a session a password reset or change, or a disable, ended."""
    return Unauthorized(
        "This session has ended; sign in again", code="session_ended", headers=INVALID_TOKEN_HEADER
    )


def _login_disabled() -> Forbidden:
    # The password was right: say so only now, and say why the login is refused.
    return Forbidden(
        "This account has been disabled; ask an administrator", code="account_disabled"
    )


class AuthService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        passwords: PasswordHasher,
        tokens: TokenService,
        api_keys: ApiKeyService,
        audit: AuditLog,
        settings: Settings,
        recovery: RecoveryService,
        access_cache: AccessCache,
        on_session_ended: SessionEnded | None = None,
    ) -> None:
        self.pool = pool
        self.audit = audit
        self.recovery = recovery
        self.passwords = passwords
        self.tokens = tokens
        self.api_keys = api_keys
        self.settings = settings
        # Told (after the commit) when a session ends, so its live sockets close.
        self.on_session_ended = on_session_ended
        # Role, disabled and verified per account, for a moment (access_cache.py).
        self.access_cache = access_cache
        self._checks: dict[uuid.UUID, asyncio.Future[Access]] = {}

    async def register(self, email: str, password: str, origin: Origin | None = None) -> None:
        """Creates an account and mails it a verification link, or, when the address
        is taken, mails its owner instead: the caller cannot tell which happened.

        Both branches hash the password (the slow part) before touching the
        database, and then write about as much, so their timing is alike too."""
        email = validate_email(email)
        password_hash = await self.passwords.hash(password)  # validates the password first
        created: User | None = None
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    created = await users.insert_user(
                        conn,
                        email=email,
                        password_hash=password_hash,
                        quota_bytes=self.settings.default_quota_bytes,
                    )
                    await self.recovery.queue_verification(conn, created)
                    await self.audit.record(
                        "auth.register",
                        actor=Actor.user(created.id),
                        target=Target.user(created.id),
                        origin=origin,
                        conn=conn,
                    )
            except asyncpg.UniqueViolationError:
                async with conn.transaction():
                    await self.recovery.queue_already_registered(conn, email)
        self.recovery.mail_queued()
        if created is not None:
            log.info("user_registered", user_id=str(created.id))
        else:
            log.info("registration_for_existing_email")

    async def login(self, email: str, password: str, origin: Origin | None = None) -> LoginResult:
        """A new session; unknown email and wrong password fail alike, in about equal time.

        Every attempt is on record (`auth.login` / `auth.login_failed`); the
        email is kept, never the password."""
        try:
            email = validate_email(email)
        except BadRequest:
            await self._login_failed(None, "invalid_email", origin)
            raise _invalid_credentials() from None  # no account can have this address
        # No connection is held while bcrypt runs: slow logins must not drain the pool.
        async with self.pool.acquire() as conn:
            user = await users.get_user_by_email(conn, email)
        if user is None:
            await self.passwords.verify_dummy(password)
            await self._login_failed(None, "unknown_email", origin, email=email)
            raise _invalid_credentials()
        if not await self.passwords.verify(password, user.password_hash):
            await self._login_failed(user.id, "wrong_password", origin, email=email)
            raise _invalid_credentials()
        if user.disabled:
            await self._login_failed(user.id, "account_disabled", origin, email=email)
            raise _login_disabled()
        async with self.pool.acquire() as conn, conn.transaction():
            family_id = uuid.uuid4()
            pair = await self._start_token(conn, user, family_id=family_id)
            await self.audit.record(
                "auth.login",
                actor=Actor.user(user.id),
                target=Target.user(user.id),
                detail={"session_id": str(family_id)},
                origin=origin,
                conn=conn,
            )
        device_token, device_ttl = self.tokens.issue_device(account_key(email))
        log.info("user_logged_in", user_id=str(user.id))
        return LoginResult(pair, device_token, device_ttl)

    async def _login_failed(
        self, user_id: uuid.UUID | None, reason: str, origin: Origin | None, email: str = ""
    ) -> None:
        await self.audit.record(
            "auth.login_failed",
            actor=ANONYMOUS,
            target=None if user_id is None else Target.user(user_id),
            outcome="denied" if reason == "account_disabled" else "failure",
            detail={"reason": reason, "email": email[:254]},
            origin=origin,
        )

    async def refresh(self, refresh_token: str, origin: Origin | None = None) -> TokenPair:
        """Spends `refresh_token` and returns the next pair of its session."""
        claims = self.tokens.decode_refresh(refresh_token)
        pair: TokenPair | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await refresh_tokens.lock_token(conn, claims.jti)
            if (
                row is None
                or row.user_id != claims.user_id
                or row.family_id != claims.family_id
                or row.revoked_at is not None
            ):
                raise invalid_token()
            if row.expires_at <= datetime.now(UTC):
                raise token_expired()
            if row.used_at is not None:
                # A replay. The revocation must commit, so the 401 is raised only
                # after the transaction block has ended (pair stays None).
                await refresh_tokens.revoke_family(conn, row.family_id)
                await self._end_access(conn, row.user_id, row.family_id)
            else:
                user = await users.get_user(conn, row.user_id)
                if user is None:
                    raise invalid_token()
                if user.disabled:  # its tokens were revoked; this guards a race
                    raise account_disabled()
                await refresh_tokens.mark_used(conn, row.jti)
                pair = await self._start_token(conn, user, family_id=row.family_id)
        if pair is None:
            log.warning("refresh_token_reused", user_id=str(claims.user_id))
            await self.audit.record(
                "auth.refresh_reuse",
                actor=ANONYMOUS,
                target=Target.user(claims.user_id),
                outcome="denied",
                detail={"session_id": str(claims.family_id)},
                origin=origin,
            )
            self._session_ended(claims.user_id, claims.family_id)
            raise Unauthorized(
                "This refresh token was already used; the session has been ended",
                code="token_reused",
            )
        return pair

    async def logout(self, refresh_token: str, origin: Origin | None = None) -> None:
        """Ends the session `refresh_token` belongs to; repeating it is harmless."""
        claims = self.tokens.decode_refresh(refresh_token)
        async with self.pool.acquire() as conn, conn.transaction():
            ended = await refresh_tokens.revoke_family(
                conn, claims.family_id, user_id=claims.user_id
            )
            if ended:  # a repeated logout ends nothing and records nothing
                await self._end_access(conn, claims.user_id, claims.family_id)
                await self.audit.record(
                    "auth.logout",
                    actor=Actor.user(claims.user_id),
                    target=Target.user(claims.user_id),
                    detail={"session_id": str(claims.family_id)},
                    origin=origin,
                    conn=conn,
                )
        self._session_ended(claims.user_id, claims.family_id)

    async def _end_access(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> None:
        """The session's access tokens are refused from now on, not only its refresh
        tokens: `Access.sessions_ended`, read by the per-request account check."""
        await refresh_tokens.end_access(
            conn, user_id, session_id, self.settings.access_token_ttl_seconds
        )

    def _session_ended(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        # This process's account check asks again at once; another instance's
        # within `account_check_cache_seconds`.
        self.access_cache.forget(user_id)
        if self.on_session_ended is not None:
            self.on_session_ended(user_id, session_id)

    async def session_is_live(self, claims: AccessClaims) -> bool:
        """False once the token's session has ended, or its account is gone."""
        async with self.pool.acquire() as conn:
            if claims.session_id is None:
                # An API key's socket, or a token from before sessions were named.
                access = await users.access_of(conn, claims.user_id)
                return access is not None and not access[1]
            return await refresh_tokens.session_is_live(conn, claims.session_id, claims.user_id)

    async def authenticate(self, access_token: str) -> AuthUser:
        """The caller an access token or an API key (`ff_…`) names, if the account
        still exists; else 401. The one place every credential is resolved: the
        HTTP middleware and the WebSocket's auth message both call it.

        The role is the account's current one (a change applies at once, not
        when the token expires), and a token of a session that a password reset or
        change, or a disable, ended is refused (`Access.admits`). Raises
        `Unauthorized` with code `invalid_token`, `token_expired`,
        `account_disabled` or `session_ended`.
        """
        if looks_like_key(access_token):
            return await self.api_keys.authenticate(access_token)
        claims = self.tokens.decode_access(access_token)
        access = self.access_cache.get(claims.user_id)
        if access is None:
            access = await self._check_access(claims.user_id)
        if access.disabled:
            raise account_disabled()
        if not access.admits(claims.generation, claims.session_id):
            raise session_ended()
        return AuthUser(
            id=claims.user_id,
            role=access.role,
            session_id=claims.session_id,
            email_verified=access.email_verified,
            token_expires_at=claims.expires_at,
        )

    async def account_checked_since(self, user_id: uuid.UUID, since: float) -> float:
        """When the account was last found to exist and be enabled (time.time()),
        asking the database again if that was before `since`; raises as
        `authenticate` does. What is derived from a token's check, such as nginx
        reusing an authorization, ends `account_check_cache_seconds` after it."""
        checked = self.access_cache.checked_at(user_id)
        if checked is None or checked < since:
            started = time.time()
            access = await self._check_access(user_id)
            if access.disabled:
                raise account_disabled()
            checked = self.access_cache.checked_at(user_id) or started
        return checked

    async def _check_access(self, user_id: uuid.UUID) -> Access:
        # One query for all the requests that arrive while it runs (a player's
        # parallel ranges), and a requester that goes away does not cancel it.
        check = self._checks.get(user_id)
        if check is None:
            check = asyncio.ensure_future(self._read_access(user_id))
            self._checks[user_id] = check
            check.add_done_callback(partial(self._check_done, user_id))
        return await asyncio.shield(check)

    def _check_done(self, user_id: uuid.UUID, check: asyncio.Future[Access]) -> None:
        self._checks.pop(user_id, None)
        if not check.cancelled():
            check.exception()  # retrieved: whoever awaited it got it already

    async def _read_access(self, user_id: uuid.UUID) -> Access:
        started = time.time()
        async with self.pool.acquire() as conn:
            access = await users.access_of(conn, user_id)
        if access is None:  # deleted since the token was issued
            self.access_cache.forget(user_id)
            raise invalid_token()
        self.access_cache.put(user_id, access, checked_at=started)
        return access

    async def account(self, user_id: uuid.UUID) -> User:
        """The caller's own account."""
        async with self.pool.acquire() as conn:
            user = await users.get_user(conn, user_id)
        if user is None:  # deleted since the token was checked
            raise invalid_token()
        return user

    async def set_email_notifications(self, user_id: uuid.UUID, enabled: bool) -> User:
        async with self.pool.acquire() as conn:
            user = await users.set_email_notifications(conn, user_id, enabled)
        if user is None:
            raise invalid_token()
        return user

    async def _start_token(
        self, conn: asyncpg.Connection, user: User, *, family_id: uuid.UUID
    ) -> TokenPair:
        """Records a new refresh token in `family_id` and signs it with a fresh access token."""
        jti = uuid.uuid4()
        refresh_token, expires_at = self.tokens.issue_refresh(user.id, jti, family_id)
        await refresh_tokens.insert_token(
            conn, jti=jti, family_id=family_id, user_id=user.id, expires_at=expires_at
        )
        access_token, expires_in = self.tokens.issue_access(
            user.id, user.role, family_id, generation=user.session_generation
        )
        return TokenPair(access_token, refresh_token, expires_in)
