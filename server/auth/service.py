"""Account and session rules: register, login, refresh rotation, logout, admins.

Sessions are refresh-token families. Each refresh spends the presented token
and issues the next one in the same family; a spent token presented again
means it was copied, so the whole family is revoked and its holder signed out.
Access tokens name their family (`sid`); when one ends, `on_session_ended`
is told after the commit, so live connections of that session close at once.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from config.settings import Settings
from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenService, invalid_token, token_expired
from server.db import refresh_tokens, users
from server.db.users import User
from server.errors import BadRequest, Conflict, Unauthorized
from server.logs import get_logger

log = get_logger("frameflow.auth")

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, less the brackets

# (user id, session id): called when a session has been revoked.
SessionEnded = Callable[[uuid.UUID, uuid.UUID], None]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


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


async def register(
    pool: asyncpg.Pool, passwords: PasswordHasher, email: str, password: str, quota: int
) -> User:
    email = validate_email(email)
    password_hash = await passwords.hash(password)  # validates the password first
    async with pool.acquire() as conn:
        try:
            user = await users.insert_user(
                conn, email=email, password_hash=password_hash, quota_bytes=quota
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "An account with this email already exists", code="email_taken"
            ) from None
    log.info("user_registered", user_id=str(user.id))
    return user


async def login(
    pool: asyncpg.Pool,
    passwords: PasswordHasher,
    tokens: TokenService,
    email: str,
    password: str,
) -> TokenPair:
    """A new session; unknown email and wrong password fail alike, in about equal time."""
    try:
        email = validate_email(email)
    except BadRequest:
        raise _invalid_credentials() from None  # no account can have this address
    # No connection is held while bcrypt runs: slow logins must not drain the pool.
    async with pool.acquire() as conn:
        user = await users.get_user_by_email(conn, email)
    if user is None:
        await passwords.verify_dummy(password)
        raise _invalid_credentials()
    if not await passwords.verify(password, user.password_hash):
        raise _invalid_credentials()
    async with pool.acquire() as conn:
        pair = await _start_token(conn, tokens, user, family_id=uuid.uuid4())
    log.info("user_logged_in", user_id=str(user.id))
    return pair


async def refresh(
    pool: asyncpg.Pool,
    tokens: TokenService,
    refresh_token: str,
    *,
    on_session_ended: SessionEnded | None = None,
) -> TokenPair:
    """Spends `refresh_token` and returns the next pair of its session."""
    claims = tokens.decode_refresh(refresh_token)
    pair: TokenPair | None = None
    async with pool.acquire() as conn, conn.transaction():
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
            pair = await _start_token(conn, tokens, user, family_id=row.family_id)
    if pair is None:
        log.warning("refresh_token_reused", user_id=str(claims.user_id))
        if on_session_ended is not None:
            on_session_ended(claims.user_id, claims.family_id)
        raise Unauthorized(
            "This refresh token was already used; the session has been ended",
            code="token_reused",
        )
    return pair


async def logout(
    pool: asyncpg.Pool,
    tokens: TokenService,
    refresh_token: str,
    *,
    on_session_ended: SessionEnded | None = None,
) -> None:
    """Ends the session `refresh_token` belongs to; repeating it is harmless."""
    claims = tokens.decode_refresh(refresh_token)
    async with pool.acquire() as conn:
        await refresh_tokens.revoke_family(conn, claims.family_id, user_id=claims.user_id)
    if on_session_ended is not None:
        on_session_ended(claims.user_id, claims.family_id)


async def create_admin(pool: asyncpg.Pool, settings: Settings, email: str, password: str) -> User:
    """Creates an administrator, or promotes the existing account with that email.

    Either way the account ends up with this password, so the command doubles as
    an admin password reset; on an existing account its sessions are ended.
    """
    email = validate_email(email)
    password_hash = await PasswordHasher(settings.bcrypt_rounds).hash(password)
    async with pool.acquire() as conn, conn.transaction():
        existing = await users.get_user_by_email(conn, email)
        if existing is None:
            user = await users.insert_user(
                conn,
                email=email,
                password_hash=password_hash,
                quota_bytes=settings.default_quota_bytes,
                role="admin",
            )
        else:
            await users.set_password_hash(conn, existing.id, password_hash)
            promoted = await users.set_role(conn, existing.id, "admin")
            assert promoted is not None  # the row is ours: same transaction
            await refresh_tokens.revoke_user_tokens(conn, existing.id)
            user = promoted
    log.info("admin_created", user_id=str(user.id), promoted=existing is not None)
    return user


async def _start_token(
    conn: asyncpg.Connection, tokens: TokenService, user: User, *, family_id: uuid.UUID
) -> TokenPair:
    """Records a new refresh token in `family_id` and signs it with a fresh access token."""
    jti = uuid.uuid4()
    refresh_token, expires_at = tokens.issue_refresh(user.id, jti, family_id)
    await refresh_tokens.insert_token(
        conn, jti=jti, family_id=family_id, user_id=user.id, expires_at=expires_at
    )
    access_token, expires_in = tokens.issue_access(user.id, user.role, family_id)
    return TokenPair(access_token, refresh_token, expires_in)
