"""Account recovery rules: verify an email, reset a forgotten password, change one.

Links are single-use tokens mailed through the outbox (`notification_log`, the
same queue as job mails): the token row and the mail row are written in one
transaction, and only the token's hash is stored (`server.recovery.tokens`).

Nothing here tells a stranger whether an address has an account: a reset
request does the same work and gives the same answer either way, and a
sign-up with a taken address mails its owner instead of failing
(`AuthService.register` calls `queue_verification` / `queue_already_registered`).

Using a token: the row is locked, so a second use of the same token waits for
the first and then finds it spent (410 `token_used`); an expired one is 410
`token_expired`; an unknown or malformed one 400 `token_invalid`.

A password reset ends every session of the account; a password change ends
every session but the caller's. Ended means the refresh tokens are revoked and
the access tokens already issued refused (`users.end_sessions`: the account's
session generation moves on, read with the per-request account check, which
this process forgets at once). Ended sessions are reported after the commit
(`on_session_ended`) so their live sockets close.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from config.settings import Settings
from server.audit.model import ANONYMOUS, Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.access_cache import AccessCache
from server.auth.model import AuthUser, User
from server.auth.passwords import PasswordHasher
from server.auth.service import validate_email
from server.auth.tokens import invalid_token
from server.db import account_tokens, refresh_tokens, users
from server.db import notifications as notifications_db
from server.errors import BadRequest, Conflict, Forbidden, Gone
from server.logs import get_logger
from server.recovery.model import (
    MAIL_ALREADY_REGISTERED,
    MAIL_EMAIL_CHANGED,
    MAIL_PASSWORD_RESET,
    MAIL_VERIFY_EMAIL,
    PASSWORD_RESET,
    VERIFY_EMAIL,
    AccountToken,
)
from server.recovery.tokens import AccountTokens, hash_token, well_formed

# Called with (user id, session id) when a session ends.
SessionEnded = Callable[[uuid.UUID, uuid.UUID], None]

log = get_logger("frameflow.recovery")

# At most one "someone tried to register with your address" mail per account in this time.
ALREADY_REGISTERED_MAIL_INTERVAL_SECONDS = 3600.0


def _token_invalid() -> BadRequest:
    return BadRequest("This link is not valid", code="token_invalid")


def _token_used() -> Gone:
    return Gone("This link has already been used", code="token_used")


def _token_expired() -> Gone:
    return Gone("This link has expired; ask for a new one", code="token_expired")


class RecoveryService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        passwords: PasswordHasher,
        tokens: AccountTokens,
        settings: Settings,
        audit: AuditLog,
        access_cache: AccessCache,
        on_session_ended: SessionEnded | None = None,
        on_mail_queued: Callable[[], None] | None = None,
    ) -> None:
        self.pool = pool
        # A verification changes what the account may do: forgotten at once here.
        self.access_cache = access_cache
        self.audit = audit  # every change below is on record, in its own transaction
        self.passwords = passwords
        self.tokens = tokens
        self.settings = settings
        self.on_session_ended = on_session_ended
        # Wakes this instance's outbox, when it runs one; others poll.
        self.on_mail_queued = on_mail_queued

    # --- mails queued inside the caller's transaction --------------------------

    async def queue_verification(self, conn: asyncpg.Connection, user: User) -> None:
        """A verification link for the account's current address."""
        ttl = self.settings.email_verification_ttl_seconds
        token_id = await self._new_token(conn, user, VERIFY_EMAIL, ttl)
        await notifications_db.enqueue_account_mail(
            conn,
            user_id=user.id,
            event=MAIL_VERIFY_EMAIL,
            recipient=user.email,
            facts={"token_id": str(token_id), "valid_seconds": ttl},
        )

    async def queue_already_registered(self, conn: asyncpg.Connection, email: str) -> None:
        """Tells the owner of `email` that someone tried to sign up with it.

        Called when a sign-up hits a taken address. It spends a token's worth of
        work too (made and hashed, never stored), so both branches cost alike."""
        hash_token(self.tokens.token_for(uuid.uuid4()))
        owner = await users.get_user_by_email(conn, email)
        if owner is None:  # deleted in between: nobody to tell
            return
        await notifications_db.enqueue_account_mail(
            conn,
            user_id=owner.id,
            event=MAIL_ALREADY_REGISTERED,
            recipient=owner.email,
            facts={},
            unless_sent_within_seconds=ALREADY_REGISTERED_MAIL_INTERVAL_SECONDS,
        )

    def mail_queued(self) -> None:
        if self.on_mail_queued is not None:
            self.on_mail_queued()

    # --- email verification ----------------------------------------------------

    async def resend_verification(self, user_id: uuid.UUID) -> None:
        """A new link to the account's address; 409 `email_already_verified` if it is."""
        async with self.pool.acquire() as conn, conn.transaction():
            user = await users.get_user(conn, user_id)
            if user is None:
                raise invalid_token()
            if user.email_verified:
                raise Conflict(
                    "The email address is already verified", code="email_already_verified"
                )
            await self.queue_verification(conn, user)
        self.mail_queued()
        log.info("email_verification_sent", user_id=str(user_id))

    async def verify_email(self, token: str, origin: Origin | None = None) -> User:
        """Marks the address the token was sent to verified, if it is still the account's."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._spend(conn, token, VERIFY_EMAIL)
            user = await users.mark_email_verified(conn, row.user_id, row.email)
            if user is None:  # the email has changed since: this link is for the old one
                raise Gone(
                    "The account's email has changed since this link was sent",
                    code="token_superseded",
                )
            # The link's holder acted: whoever reads the mailbox, not a session.
            await self.audit.record(
                "email.verify",
                actor=ANONYMOUS,
                target=Target.user(user.id),
                detail={"email": user.email},
                origin=origin,
                conn=conn,
            )
        self.access_cache.forget(user.id)
        log.info("email_verified", user_id=str(user.id))
        return user

    async def change_email(
        self,
        caller: AuthUser,
        email: str,
        current_password: str | None,
        origin: Origin | None = None,
    ) -> User:
        """Sets a new, unverified address, mails it a link and mails the old one a notice.

        Needs the current password, as a password change does (400
        `current_password_required`, 403 `wrong_password`, on record as a failed
        `email.change`): a session alone must not be enough to move the account's
        mail, and with it its password resets, to another mailbox. 409
        `email_taken` (also on record): see README "Accounts" for why it says so."""
        email = validate_email(email)
        user_id = caller.id
        async with self.pool.acquire() as conn:
            current = await users.get_user(conn, user_id)
        if current is None:
            raise invalid_token()
        if current.email == email:
            return current
        if current_password is None:
            raise BadRequest(
                "Changing the email needs the current password",
                code="current_password_required",
                field="current_password",
            )
        # No connection is held while bcrypt runs.
        if not await self.passwords.verify(current_password, current.password_hash):
            await self._email_change_failed(caller, "wrong_current_password", email, origin)
            raise Forbidden("The current password is not correct", code="wrong_password")
        user = await self._move_email(caller, current, email, origin)
        if user is None:
            await self._email_change_failed(caller, "email_taken", email, origin)
            raise Conflict("Another account has this email address", code="email_taken")
        self.access_cache.forget(user_id)
        self.mail_queued()
        log.info("email_changed", user_id=str(user_id))
        return user

    async def _move_email(
        self, caller: AuthUser, current: User, email: str, origin: Origin | None
    ) -> User | None:
        """The account at its new address, links and notice queued; None when it is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                async with conn.transaction():  # a savepoint: the conflict must not end ours
                    user = await users.set_email(conn, current.id, email)
            except asyncpg.UniqueViolationError:
                return None
            if user is None:  # deleted since it was read
                raise invalid_token()
            await account_tokens.use_all(conn, user.id, VERIFY_EMAIL)
            await account_tokens.use_all(conn, user.id, PASSWORD_RESET)
            await self.queue_verification(conn, user)
            # The old address hears of it: its owner may not be the one who asked.
            await notifications_db.enqueue_account_mail(
                conn,
                user_id=user.id,
                event=MAIL_EMAIL_CHANGED,
                recipient=current.email,
                facts={"new_email": email},
            )
            await self.audit.record(
                "email.change",
                actor=Actor.of(caller),
                target=Target.user(user.id),
                detail={"old_email": current.email, "email": email},
                origin=origin,
                conn=conn,
            )
        return user

    async def _email_change_failed(
        self, caller: AuthUser, reason: str, email: str, origin: Origin | None
    ) -> None:
        await self.audit.record(
            "email.change",
            actor=Actor.of(caller),
            target=Target.user(caller.id),
            outcome="failure",
            detail={"reason": reason, "email": email},
            origin=origin,
        )

    # --- passwords ---------------------------------------------------------------

    async def request_password_reset(self, email: str, origin: Origin | None = None) -> None:
        """Mails a reset link if an account has `email`; the same work and no answer either way."""
        token_id = uuid.uuid4()
        hash_token(self.tokens.token_for(token_id))  # what the found branch spends too
        queued = False
        async with self.pool.acquire() as conn, conn.transaction():
            user = await users.get_user_by_email(conn, email)
            if user is not None:
                ttl = self.settings.password_reset_ttl_seconds
                token_id = await self._new_token(conn, user, PASSWORD_RESET, ttl)
                await notifications_db.enqueue_account_mail(
                    conn,
                    user_id=user.id,
                    event=MAIL_PASSWORD_RESET,
                    recipient=user.email,
                    facts={"token_id": str(token_id), "valid_seconds": ttl},
                )
                # The owner sees it in their security events; the requester learns nothing.
                await self.audit.record(
                    "password.reset_requested",
                    actor=ANONYMOUS,
                    target=Target.user(user.id),
                    origin=origin,
                    conn=conn,
                )
                queued = True
        if queued:
            self.mail_queued()
            log.info("password_reset_requested", user_id=str(user.id) if user else None)

    async def reset_password(self, token: str, password: str, origin: Origin | None = None) -> User:
        """Sets a new password with a reset token and ends every session of the account.

        Following the link also proves the address works, so it verifies it."""
        password_hash = await self.passwords.hash(password)  # validates first, holds no connection
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._spend(conn, token, PASSWORD_RESET)
            user = await users.get_user(conn, row.user_id)
            if user is None or user.email.lower() != row.email.lower():
                raise Gone(
                    "The account's email has changed since this link was sent",
                    code="token_superseded",
                )
            await users.set_password_hash(conn, user.id, password_hash)
            verified = await users.mark_email_verified(conn, user.id, row.email)
            ended = await refresh_tokens.revoke_user_sessions(conn, user.id)
            await users.end_sessions(conn, user.id)  # their access tokens too
            await self.audit.record(
                "password.reset",
                actor=ANONYMOUS,
                target=Target.user(user.id),
                detail={"sessions_ended": len(ended)},
                origin=origin,
                conn=conn,
            )
        self.access_cache.forget(user.id)  # following the link verified the address
        self._sessions_ended(user.id, ended)
        log.info("password_reset", user_id=str(user.id), sessions_ended=len(ended))
        return verified or user

    async def change_password(
        self, caller: AuthUser, current: str, new: str, origin: Origin | None = None
    ) -> None:
        """Needs the current password (403 `wrong_password`); ends the other sessions.

        The caller's own session (its refresh-token family) lives on."""
        async with self.pool.acquire() as conn:
            user = await users.get_user(conn, caller.id)
        if user is None:
            raise invalid_token()
        if not await self.passwords.verify(current, user.password_hash):
            await self.audit.record(
                "password.change",
                actor=Actor.of(caller),
                target=Target.user(user.id),
                outcome="failure",
                detail={"reason": "wrong_current_password"},
                origin=origin,
            )
            raise Forbidden("The current password is not correct", code="wrong_password")
        password_hash = await self.passwords.hash(new)
        async with self.pool.acquire() as conn, conn.transaction():
            await users.set_password_hash(conn, user.id, password_hash)
            # A reset link mailed earlier must not undo this change.
            await account_tokens.use_all(conn, user.id, PASSWORD_RESET)
            ended = await refresh_tokens.revoke_user_sessions(
                conn, user.id, keep_family=caller.session_id
            )
            # Their access tokens too; the caller's (same session) keep working.
            await users.end_sessions(conn, user.id, keep_session=caller.session_id)
            await self.audit.record(
                "password.change",
                actor=Actor.of(caller),
                target=Target.user(user.id),
                detail={"sessions_ended": len(ended)},
                origin=origin,
                conn=conn,
            )
        self.access_cache.forget(user.id)
        self._sessions_ended(user.id, ended)
        log.info("password_changed", user_id=str(user.id), sessions_ended=len(ended))

    # --- tokens ---------------------------------------------------------------

    async def _new_token(
        self, conn: asyncpg.Connection, user: User, purpose: str, ttl_seconds: int
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        await account_tokens.insert_token(
            conn,
            token_id=token_id,
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(self.tokens.token_for(token_id)),
            email=user.email,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
        return token_id

    async def _spend(self, conn: asyncpg.Connection, token: str, purpose: str) -> AccountToken:
        """The token's row, now used, with every other token of its kind for the account."""
        if not well_formed(token):
            raise _token_invalid()
        row = await account_tokens.lock_by_hash(conn, hash_token(token))
        if row is None or row.purpose != purpose:
            raise _token_invalid()
        if row.used_at is not None:
            raise _token_used()
        if row.expires_at <= datetime.now(UTC):
            raise _token_expired()
        await account_tokens.use_all(conn, row.user_id, purpose)
        return row

    def _sessions_ended(self, user_id: uuid.UUID, sessions: list[uuid.UUID]) -> None:
        if self.on_session_ended is None:
            return
        for session_id in sessions:
            self.on_session_ended(user_id, session_id)
