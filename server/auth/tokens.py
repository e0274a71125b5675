"""Access, refresh and known-device JWTs (HS256), kept apart by audience and type.

An access token proves who is calling; a refresh token can only be exchanged
for a new pair; a device token only says "this client has logged in to this
account before" (see `server.auth.devices`). Each is rejected where another is
expected, so a leaked refresh token cannot call the API, an access token
cannot mint sessions, and a device token opens nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from config.settings import Settings
from server.auth import permissions
from server.errors import Unauthorized

ALGORITHM = "HS256"
ACCESS_AUDIENCE = "frameflow:access"
REFRESH_AUDIENCE = "frameflow:refresh"
DEVICE_AUDIENCE = "frameflow:device"
ACCESS_TYPE = "access"
REFRESH_TYPE = "refresh"
DEVICE_TYPE = "device"
ROLES = frozenset(permissions.ROLES)
# Tolerates small clock differences between instances behind one load balancer.
LEEWAY_SECONDS = 5
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "aud"]
# Verified access tokens remembered at once (see `TokenService.decode_access`).
_VERIFIED_TOKENS = 10_000
INVALID_TOKEN_HEADER = {"WWW-Authenticate": 'Bearer realm="frameflow", error="invalid_token"'}


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    # The session (refresh-token family) it was issued in: live connections made
    # with it end when that session does. None in tokens from before `sid`.
    session_id: uuid.UUID | None = None
    expires_at: int = 0  # epoch seconds (`exp`)
    # The account's session generation at issue (`gen`; 0 in tokens from before it):
    # `Access.admits` refuses it once a reset, a password change or a disable moved on.
    generation: int = 0


@dataclass(frozen=True)
class RefreshClaims:
    user_id: uuid.UUID
    jti: uuid.UUID
    family_id: uuid.UUID


@dataclass(frozen=True)
class DeviceClaims:
    account: str  # `devices.account_key` of the email it logged in with
    device_id: str


def invalid_token(message: str = "The token is invalid") -> Unauthorized:
    return Unauthorized(message, code="invalid_token", headers=INVALID_TOKEN_HEADER)


def token_expired() -> Unauthorized:
    return Unauthorized("The token has expired", code="token_expired", headers=INVALID_TOKEN_HEADER)


class TokenService:
    def __init__(
        self, secret: str, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret.encode("utf-8")) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        self._key = secret
        self._access_ttl = settings.access_token_ttl_seconds
        self._refresh_ttl = settings.refresh_token_ttl_seconds
        self._clock = clock  # injectable so tests can mint already-expired tokens
        # Access tokens already verified: a player sends the same one with every
        # range request, and verifying it (PyJWT) cost more than serving the range.
        # A token's claims never change; its expiry is checked on every use.
        self._verified: dict[str, AccessClaims] = {}

    def issue_access(
        self,
        user_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID | None = None,
        *,
        generation: int = 0,
    ) -> tuple[str, int]:
        """A signed access token (of session `session_id`, in the account's session
        `generation`) and its lifetime in seconds."""
        now = int(self._clock())
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "aud": ACCESS_AUDIENCE,
            "typ": ACCESS_TYPE,
            "role": role,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + self._access_ttl,
        }
        if session_id is not None:
            payload["sid"] = str(session_id)
        if generation:
            payload["gen"] = generation
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), self._access_ttl

    def issue_refresh(
        self, user_id: uuid.UUID, jti: uuid.UUID, family_id: uuid.UUID
    ) -> tuple[str, datetime]:
        """A signed refresh token and when it expires (store that with its row)."""
        now = int(self._clock())
        exp = now + self._refresh_ttl
        payload = {
            "sub": str(user_id),
            "aud": REFRESH_AUDIENCE,
            "typ": REFRESH_TYPE,
            "fam": str(family_id),
            "jti": str(jti),
            "iat": now,
            "exp": exp,
        }
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM)
        return token, datetime.fromtimestamp(exp, UTC)

    def issue_device(self, account: str) -> tuple[str, int]:
        """A signed known-device token for `account` and its lifetime in seconds.

        It lives as long as a session can: a client that logged in within that
        time is still "known"; every login renews it.
        """
        now = int(self._clock())
        payload = {
            "sub": account,
            "aud": DEVICE_AUDIENCE,
            "typ": DEVICE_TYPE,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + self._refresh_ttl,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), self._refresh_ttl

    def decode_device(self, token: str) -> DeviceClaims:
        claims = self._decode(token, DEVICE_AUDIENCE, DEVICE_TYPE)
        account, device_id = claims["sub"], claims["jti"]
        if not isinstance(account, str) or not isinstance(device_id, str):
            raise invalid_token()
        return DeviceClaims(account=account, device_id=device_id)

    def decode_access(self, token: str) -> AccessClaims:
        known = self._verified.get(token)
        if known is not None:
            # PyJWT's own test, on the same clock: expired when exp <= now - leeway.
            if known.expires_at > time.time() - LEEWAY_SECONDS:
                return known
            del self._verified[token]
            raise token_expired()
        decoded = self._decode_access(token)
        if len(self._verified) >= _VERIFIED_TOKENS:
            self._verified.clear()  # a bound on memory; costs one verification each
        self._verified[token] = decoded
        return decoded

    def _decode_access(self, token: str) -> AccessClaims:
        claims = self._decode(token, ACCESS_AUDIENCE, ACCESS_TYPE)
        try:
            role = claims["role"]
            if role not in ROLES:
                raise ValueError(role)
            sid = claims.get("sid")
            expires_at = claims["exp"]
            if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
                raise TypeError(expires_at)
            generation = claims.get("gen", 0)
            if isinstance(generation, bool) or not isinstance(generation, int):
                raise TypeError(generation)
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                role=role,
                session_id=None if sid is None else uuid.UUID(sid),
                expires_at=int(expires_at),
                generation=generation,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise invalid_token() from None

    def decode_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, REFRESH_AUDIENCE, REFRESH_TYPE)
        try:
            return RefreshClaims(
                user_id=uuid.UUID(claims["sub"]),
                jti=uuid.UUID(claims["jti"]),
                family_id=uuid.UUID(claims["fam"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise invalid_token() from None

    def _decode(self, token: str, audience: str, typ: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],  # pinned: never trust the header's "alg"
                audience=audience,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise token_expired() from None
        except jwt.PyJWTError:
            raise invalid_token() from None
        # The audience already separates the two kinds; typ is a second, explicit check.
        if claims.get("typ") != typ:
            raise invalid_token()
        return claims
