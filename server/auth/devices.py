"""Known devices: a signed cookie that marks a client which has logged in to an account.

Login attempts are limited per account so that many addresses together cannot
guess one password (ASVS 2.2.1). Counted alone, that limit would let anyone
lock the owner out by failing on purpose. So a successful login sets a
known-device cookie (a JWT of its own audience naming the account, HttpOnly,
sent only to the login path); attempts that present a valid one for the
account they name are counted per device instead of per account. Strangers
then use up only the account's allowance for unknown clients, and the owner's
browser keeps logging in (OWASP's "device cookies").
"""

from __future__ import annotations

import hashlib

from server.auth.tokens import TokenService
from server.errors import HTTPError

DEVICE_COOKIE = "frameflow_device"
DEVICE_COOKIE_PATH = "/api/v1/auth/login"


def account_key(email: str) -> str:
    """The account an email names, as any spelling of it logs in (case, spaces).

    Hashed: keeps addresses out of Redis and out of cookies, and bounds the length.
    """
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def known_device(tokens: TokenService, cookie: str | None, email: str) -> str | None:
    """The device id when `cookie` is a valid device token for this email's account."""
    if not cookie:
        return None
    try:
        claims = tokens.decode_device(cookie)
    except HTTPError:
        return None  # expired, forged or garbage: an unknown client like any other
    return claims.device_id if claims.account == account_key(email) else None
