"""tus 1.0 request headers, parsed and rendered (pure; see the protocol's "Headers").

Every parser raises `BadRequest` naming the header, so a malformed request
is refused before anything is read or stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from server.errors import BadRequest

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "expiration",
    "checksum",
)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
}
MAX_METADATA_BYTES = 4096
_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,19}")


def _invalid(header: str, why: str) -> BadRequest:
    return BadRequest(f"{header}: {why}", code="invalid_header", header=header)


def missing(header: str) -> BadRequest:
    return BadRequest(f"{header} is required", code="missing_header", header=header)


async def no_chunks() -> AsyncIterator[bytes]:
    """An empty body (a PATCH that only declares a length, a creation of length 0)."""
    return
    yield b""


def parse_size(header: str, raw: str | None) -> int | None:
    """A non-negative integer header (Upload-Length, Upload-Offset), or None when absent."""
    if raw is None:
        return None
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        raise _invalid(header, "must be a non-negative integer")
    return int(raw)


def parse_creation_length(headers: Mapping[str, str]) -> int | None:
    """Upload-Length, or None with `Upload-Defer-Length: 1`; exactly one of the two."""
    length = parse_size("Upload-Length", headers.get("Upload-Length"))
    defer = headers.get("Upload-Defer-Length")
    if defer is not None and defer.strip() != "1":
        raise _invalid("Upload-Defer-Length", "the only allowed value is 1")
    if (length is None) == (defer is None):
        raise BadRequest(
            "Send either Upload-Length or Upload-Defer-Length: 1",
            code="invalid_header",
            header="Upload-Length",
        )
    return length


def parse_metadata(raw: str | None) -> dict[str, str]:
    """`key base64,key2 base64,key3`: values decoded as UTF-8 (a key alone is "")."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_METADATA_BYTES:
        raise _invalid("Upload-Metadata", f"longer than {MAX_METADATA_BYTES} bytes")
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        key, _, value = item.strip().partition(" ")
        if not _KEY.fullmatch(key) or " " in value.strip():
            raise _invalid("Upload-Metadata", f"malformed pair {item.strip()[:40]!r}")
        if key in pairs:
            raise _invalid("Upload-Metadata", f"duplicate key {key!r}")
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _invalid("Upload-Metadata", f"the value of {key!r} is not base64 UTF-8") from None
    return pairs


def format_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def parse_checksum(raw: str | None) -> Checksum | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(
            f"Upload-Checksum: unsupported algorithm; use one of {', '.join(CHECKSUM_ALGORITHMS)}",
            code="unsupported_checksum",
            header="Upload-Checksum",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise _invalid("Upload-Checksum", "the digest is not base64") from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise _invalid("Upload-Checksum", f"not a {algorithm} digest")
    return Checksum(algorithm, digest)


def http_date(moment: datetime) -> str:
    """RFC 9110's IMF-fixdate, as `Upload-Expires` uses."""
    return format_datetime(moment, usegmt=True)
