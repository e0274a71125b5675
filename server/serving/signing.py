"""Short-lived signed URLs, for clients such as `<video>` that cannot send headers.

A signature binds one path to one expiry: changing either breaks it. Sign and
verify must be given the same form of the path (aiohttp's decoded
`request.path`, without the query string).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping

__all__ = ["UrlSigner", "playback_seconds"]

# A dedicated key, so a signature made here is useless anywhere else that
# `secret` is used (sessions, tokens), and vice versa.
_KEY_LABEL = b"frameflow url signing v1"
# Links that also carry claims (what serving needs, so it needs no lookup) are
# signed with their own key: no link of one form can be read as the other.
_CLAIMS_KEY_LABEL = b"frameflow url signing v1 with claims"
# Claims travel in the query; bound what a request can make us hash and decode.
MAX_CLAIMS_LENGTH = 4096
# base64url of a 32-byte HMAC-SHA256 without padding.
_SIGNATURE_LENGTH = 43
# Digits in an epoch second for the next few thousand years; bounds int().
_MAX_EXPIRES_DIGITS = 12
# Bounds what a probed duration can add to a link (a day, whatever the metadata says).
MAX_MEDIA_SECONDS = 24 * 3600


class UrlSigner:
    __slots__ = ("_claims_key", "_key")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("the URL signing secret must be non-empty bytes")
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()
        self._claims_key = hmac.new(secret, _CLAIMS_KEY_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "UrlSigner(<key hidden>)"

    def sign(self, path: str, expires_at: int, claims: str | None = None) -> str:
        """The URL-safe signature of `path` (and `claims`, an opaque URL-safe string)
        valid until the epoch second `expires_at`."""
        if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at < 0:
            raise ValueError("expires_at must be a non-negative integer epoch")
        if claims is not None and not _claims_ok(claims):
            raise ValueError("claims must be a non-empty URL-safe base64 string")
        return self._signature(path, expires_at, claims)

    def verify(
        self,
        path: str,
        expires_at: int,
        signature: str,
        now: float | None = None,
        claims: str | None = None,
    ) -> bool:
        """True only for an unexpired signature of exactly this path, expiry and
        claims; never raises."""
        try:
            if isinstance(expires_at, bool) or not isinstance(expires_at, int):
                return False
            if not isinstance(signature, str) or len(signature) != _SIGNATURE_LENGTH:
                return False
            if not signature.isascii():
                return False  # compare_digest raises on non-ASCII str
            if (time.time() if now is None else now) >= expires_at:
                return False
            if claims is not None and not _claims_ok(claims):
                return False
            expected = self._signature(path, expires_at, claims)
            return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))
        except Exception:
            # A malformed request is a failed check, not a 500.
            return False

    def verify_query(self, path: str, query: Mapping[str, str], now: float | None = None) -> bool:
        """`verify` on the `expires`, `signature` and (when present) `claims` query
        parameters as received."""
        expires = query.get("expires")
        signature = query.get("signature")
        if not isinstance(expires, str) or not isinstance(signature, str):
            return False
        if len(expires) > _MAX_EXPIRES_DIGITS or not (expires.isascii() and expires.isdigit()):
            return False
        return self.verify(path, int(expires), signature, now, query.get("claims"))

    def signed_query(
        self, path: str, ttl_seconds: int, now: float | None = None, claims: str | None = None
    ) -> tuple[dict[str, str], int]:
        """Query parameters that make `path` readable for `ttl_seconds`, and their expiry."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        expires_at = int(time.time() if now is None else now) + ttl_seconds
        query = {"expires": str(expires_at), "signature": self.sign(path, expires_at, claims)}
        if claims is not None:
            query["claims"] = claims
        return query, expires_at

    def _signature(self, path: str, expires_at: int, claims: str | None = None) -> str:
        if claims is None:
            # The expiry is digits only, so the last "\n" always separates the two
            # fields and no path/expiry pair can collide with another.
            message = f"{path}\n{expires_at}".encode("utf-8", "surrogatepass")
            key = self._key
        else:
            # Claims are base64url and the expiry digits, neither holds "\n": the
            # first two separate the fields, whatever the path holds.
            message = f"{claims}\n{expires_at}\n{path}".encode("utf-8", "surrogatepass")
            key = self._claims_key
        digest = hmac.digest(key, message, "sha256")  # the one-shot C path
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def _claims_ok(claims: object) -> bool:
    return (
        isinstance(claims, str)
        and len(claims) <= MAX_CLAIMS_LENGTH
        and _BASE64URL.fullmatch(claims) is not None
    )


def playback_seconds(link_ttl_seconds: int, duration: object) -> int:
    """How long a link to media must last: its duration (when known) plus the link TTL.

    With only the TTL, a film longer than the TTL stops halfway; the TTL on
    top is the margin for pauses and a late start.
    """
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        return link_ttl_seconds
    if not math.isfinite(duration) or duration <= 0:
        return link_ttl_seconds
    return link_ttl_seconds + math.ceil(min(float(duration), MAX_MEDIA_SECONDS))
