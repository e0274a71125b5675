"""The secret of a verification or reset link, made from its row id (pure).

A token is HMAC-SHA256(key, row id): 256 bits that nobody without the server
secret can compute. The database keeps only the token's SHA-256 (the lookup
key) and the outbox row keeps only the row id, so neither a database dump nor
a backup holds a usable link; the outbox remakes the token from the id when it
writes the mail. The row id is a random UUID, so each token is new.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

# A dedicated key: a token made here means nothing to the URL signer or the JWTs.
_KEY_LABEL = b"frameflow account tokens v1"
# base64url of 32 bytes without padding.
TOKEN_LENGTH = 43
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class AccountTokens:
    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the account token secret must be non-empty")
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "AccountTokens(<key hidden>)"

    def token_for(self, token_id: uuid.UUID) -> str:
        mac = hmac.new(self._key, token_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> bytes:
    """What the database keeps and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def well_formed(token: str) -> bool:
    return len(token) == TOKEN_LENGTH and set(token) <= _ALPHABET
