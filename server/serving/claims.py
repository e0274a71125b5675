"""What a signed media link carries so that serving it needs no lookup.

As with S3's presigned URLs, the link itself says which object to serve and
how (key, size, ETag, type, name, date); the signature (`UrlSigner`, with its
own key for links with claims) is what makes it trustworthy. The encoding is
compact JSON in base64url, so it fits a query parameter unescaped.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from server.serving.serve import StoredFile

__all__ = ["claims_of", "stored_file_of"]

_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def claims_of(obj: StoredFile) -> str:
    micros = (obj.last_modified - _EPOCH) // timedelta(microseconds=1)
    fields = [_VERSION, obj.key, obj.size, obj.etag_token, obj.content_type, micros, obj.filename]
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def stored_file_of(claims: str) -> StoredFile | None:
    """The object named by claims made by `claims_of`; None if they are not such claims.

    Only call it on claims whose signature was verified: they are trusted as they are.
    A player sends the same link with every range, so decoded claims are remembered.
    """
    known = _decoded.get(claims)
    if known is None:
        known = _decode(claims)
        if known is not None:
            if len(_decoded) >= _DECODED_MAX:
                _decoded.clear()
            _decoded[claims] = known
    return known


# Verified claims decoded recently; they never change meaning, so no expiry is needed.
_DECODED_MAX = 4096
_decoded: dict[str, StoredFile] = {}


def _decode(claims: str) -> StoredFile | None:
    try:
        raw = base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))
        version, key, size, etag_token, content_type, micros, filename = json.loads(raw)
    except (ValueError, TypeError, OverflowError, binascii.Error):
        return None
    if version != _VERSION:
        return None
    return StoredFile(
        key=key,
        size=size,
        etag_token=etag_token,
        last_modified=_EPOCH + timedelta(microseconds=micros),
        content_type=content_type,
        filename=filename,
    )
