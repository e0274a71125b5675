"""Password rules and bcrypt hashing, run in worker threads.

bcrypt is deliberately slow (~0.25 s at cost 12), so every hash and check runs
via `asyncio.to_thread` to keep the event loop serving other requests.
"""

from __future__ import annotations

import asyncio
import functools

import bcrypt

from server.errors import BadRequest

MIN_PASSWORD_BYTES = 8
# bcrypt only reads 72 bytes, and bcrypt 5 raises on more rather than truncating.
MAX_PASSWORD_BYTES = 72


def password_bytes(password: str) -> bytes:
    """The UTF-8 bytes of an acceptable password, or a 400 "invalid_password"."""
    try:
        raw = password.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which JSON "\ud800" can carry
        raise BadRequest("The password is not valid text", code="invalid_password") from None
    if not MIN_PASSWORD_BYTES <= len(raw) <= MAX_PASSWORD_BYTES:
        raise BadRequest(
            f"The password must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes "
            "long in UTF-8",
            code="invalid_password",
        )
    return raw


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    # Computed on first use, per cost, so an unknown email costs one real check.
    return bcrypt.hashpw(b"frameflow-dummy-password", bcrypt.gensalt(rounds))


def _check(raw: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(raw, hashed)
    except ValueError:  # a malformed stored hash is a failed login, not a crash
        return False


def _check_dummy(raw: bytes, rounds: int) -> None:
    _check(raw, _dummy_hash(rounds))


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    async def hash(self, password: str) -> str:
        """Validates, then hashes; raises 400 "invalid_password" on a bad password."""
        raw = password_bytes(password)
        salt = bcrypt.gensalt(self.rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, raw, salt)
        return hashed.decode("ascii")

    async def verify(self, password: str, password_hash: str) -> bool:
        """False (never an exception) for a password that could not have been set."""
        raw = _acceptable_bytes(password)
        if raw is None:
            # Rejected on length alone: the answer depends on nothing stored,
            # so skipping bcrypt reveals nothing about the account.
            return False
        return await asyncio.to_thread(_check, raw, password_hash.encode("utf-8"))

    async def verify_dummy(self, password: str) -> None:
        """Spends the time of a real check, for logins naming an unknown email."""
        raw = _acceptable_bytes(password)
        if raw is None:
            return  # mirrors verify(), which also skips bcrypt for these
        await asyncio.to_thread(_check_dummy, raw, self.rounds)


def _acceptable_bytes(password: str) -> bytes | None:
    try:
        return password_bytes(password)
    except BadRequest:
        return None
