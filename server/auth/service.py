"""Account and session rules: register, login, refresh rotation, logout, who is calling.

Sessions are refresh-token families. Each refresh spends the presented token
and issues the next one in the same family; a spent token presented again
means it was copied, so the whole family is revoked and its holder signed out.

Every access token is checked against the accounts that still exist
(`authenticate`): a token outliving its account is a 401 everywhere, not a
foreign-key error or an empty list. Access tokens name their family (`sid`);
when one ends, `on_session_ended` is told after the commit, so live
connections of that session close at once.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import asyncpg

from config.settings import Settings
from server.apikeys.service import ApiKeyService, looks_like_key
from server.auth.devices import account_key
from server.auth.model import AuthUser, LoginResult, TokenPair, User
from server.auth.passwords import PasswordHasher
from server.auth.tokens import AccessClaims, TokenService, invalid_token, token_expired
from server.db import refresh_tokens, users
from server.errors import BadRequest, Conflict, Unauthorized
from server.logs import get_logger

# Called with (user id, session id) when a session ends.
SessionEnded = Callable[[uuid.UUID, uuid.UUID], None]

log = get_logger("frameflow.auth")

# Accounts remembered by `authenticate` at once (a bound on memory, not on time).
_ACCOUNT_CACHE_SIZE = 10_000

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


class AuthService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        passwords: PasswordHasher,
        tokens: TokenService,
        api_keys: ApiKeyService,
        settings: Settings,
        on_session_ended: SessionEnded | None = None,
    ) -> None:
        self.pool = pool
        self.passwords = passwords
        self.tokens = tokens
        self.api_keys = api_keys
        self.settings = settings
        # Told (after the commit) when a session ends, so its live sockets close.
        self.on_session_ended = on_session_ended
        # Accounts seen to exist, until a monotonic time: a player's range requests
        # would otherwise ask the database once each. Never longer than
        # `account_check_cache_seconds` (at most a few seconds, issue 10), and
        # only what was found: a missing account is asked again every time.
        self._existing: dict[uuid.UUID, float] = {}
        self._checks: dict[uuid.UUID, asyncio.Future[None]] = {}

    async def register(self, email: str, password: str) -> User:
        email = validate_email(email)
        password_hash = await self.passwords.hash(password)  # validates the password first
        async with self.pool.acquire() as conn:
            try:
                user = await users.insert_user(
                    conn,
                    email=email,
                    password_hash=password_hash,
                    quota_bytes=self.settings.default_quota_bytes,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(
                    "An account with this email already exists", code="email_taken"
                ) from None
        log.info("user_registered", user_id=str(user.id))
        return user

    async def login(self, email: str, password: str) -> LoginResult:
        """A new session; unknown email and wrong password fail alike, in about equal time."""
        try:
            email = validate_email(email)
        except BadRequest:
            raise _invalid_credentials() from None  # no account can have this address
        # No connection is held while bcrypt runs: slow logins must not drain the pool.
        async with self.pool.acquire() as conn:
            user = await users.get_user_by_email(conn, email)
        if user is None:
            await self.passwords.verify_dummy(password)
            raise _invalid_credentials()
        if not await self.passwords.verify(password, user.password_hash):
            raise _invalid_credentials()
        async with self.pool.acquire() as conn:
            pair = await self._start_token(conn, user, family_id=uuid.uuid4())
        device_token, device_ttl = self.tokens.issue_device(account_key(email))
        log.info("user_logged_in", user_id=str(user.id))
        return LoginResult(pair, device_token, device_ttl)

    async def refresh(self, refresh_token: str) -> TokenPair:
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
            else:
                user = await users.get_user(conn, row.user_id)
                if user is None:
                    raise invalid_token()
                await refresh_tokens.mark_used(conn, row.jti)
                pair = await self._start_token(conn, user, family_id=row.family_id)
        if pair is None:
            log.warning("refresh_token_reused", user_id=str(claims.user_id))
            self._session_ended(claims.user_id, claims.family_id)
            raise Unauthorized(
                "This refresh token was already used; the session has been ended",
                code="token_reused",
            )
        return pair

    async def logout(self, refresh_token: str) -> None:
        """Ends the session `refresh_token` belongs to; repeating it is harmless."""
        claims = self.tokens.decode_refresh(refresh_token)
        async with self.pool.acquire() as conn:
            await refresh_tokens.revoke_family(conn, claims.family_id, user_id=claims.user_id)
        self._session_ended(claims.user_id, claims.family_id)

    def _session_ended(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        if self.on_session_ended is not None:
            self.on_session_ended(user_id, session_id)

    async def session_is_live(self, claims: AccessClaims) -> bool:
        """False once the token's session has ended, or its account is gone."""
        async with self.pool.acquire() as conn:
            if claims.session_id is None:
                # A token from before sessions were named: lives to its expiry.
                return await users.user_exists(conn, claims.user_id)
            return await refresh_tokens.session_is_live(conn, claims.session_id, claims.user_id)

    async def authenticate(self, access_token: str) -> AuthUser:
        """The caller an access token or an API key (`ff_…`) names, if the account
        still exists; else 401. The one place every credential is resolved: the
        HTTP middleware and the WebSocket's auth message both call it.

        Raises `Unauthorized` with code `invalid_token` or `token_expired`.
        """
        if looks_like_key(access_token):
            return await self.api_keys.authenticate(access_token)
        claims = self.tokens.decode_access(access_token)
        if self._existing.get(claims.user_id, 0.0) <= time.monotonic():
            # One query for all the requests that arrive while it runs (a player's
            # parallel ranges), and a requester that goes away does not cancel it.
            check = self._checks.get(claims.user_id)
            if check is None:
                check = asyncio.ensure_future(self._check_account(claims.user_id))
                self._checks[claims.user_id] = check
                check.add_done_callback(partial(self._check_done, claims.user_id))
            await asyncio.shield(check)
        return AuthUser(id=claims.user_id, role=claims.role)

    def _check_done(self, user_id: uuid.UUID, check: asyncio.Future[None]) -> None:
        self._checks.pop(user_id, None)
        if not check.cancelled():
            check.exception()  # retrieved: whoever awaited it got it already

    async def _check_account(self, user_id: uuid.UUID) -> None:
        async with self.pool.acquire() as conn:
            exists = await users.user_exists(conn, user_id)
        if not exists:  # deleted since the token was issued
            self._existing.pop(user_id, None)
            raise invalid_token()
        ttl = self.settings.account_check_cache_seconds
        if ttl > 0:
            now = time.monotonic()
            if len(self._existing) >= _ACCOUNT_CACHE_SIZE:
                # Drop what has expired; if all is fresh, start over (costs one query each).
                self._existing = {k: t for k, t in self._existing.items() if t > now}
                if len(self._existing) >= _ACCOUNT_CACHE_SIZE:
                    self._existing.clear()
            self._existing[user_id] = now + ttl

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
        access_token, expires_in = self.tokens.issue_access(user.id, user.role, family_id)
        return TokenPair(access_token, refresh_token, expires_in)
