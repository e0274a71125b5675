"""Signed, header-free URLs for job outputs.

A token in the *path* — `/api/v1/jobs/{id}/t/{token}/{name}` — rather than
the query string, so that the relative URIs inside an HLS playlist
(`720p/index.m3u8`, `segment_00001.ts`) resolve to URLs that carry a token,
and any player plays the master playlist without custom headers. A token
opens every output of its job until it expires.

Two kinds, told apart by their number of fields:

- a *link* token, `{expires}.{signature}`, is what the API and mails hand
  out; it signs the job's token prefix and its expiry;
- a *playback* token, `{expires}.{link_expires}.{signature}`, is minted when a
  playlist is served under a valid token (see `playlists.py`): the URIs
  inside carry it, so playback outlives the link it started from. It is
  valid for the media's duration plus the link TTL, but never past the
  original link's expiry plus that same span, so re-fetching playlists
  cannot keep a link alive for ever.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from server.serving.signing import UrlSigner

# Digits in an epoch second for the next few thousand years; bounds int().
_MAX_DIGITS = 12


@dataclass(frozen=True)
class OutputToken:
    """A verified token: when it expires, and when the link it descends from did."""

    expires_at: int
    link_expires_at: int


def token_prefix(job_id: uuid.UUID | str) -> str:
    return f"/api/v1/jobs/{job_id}/t/"


def make_token(signer: UrlSigner, job_id: uuid.UUID | str, expires_at: int) -> str:
    """A link token valid until `expires_at`."""
    return f"{expires_at}.{signer.sign(token_prefix(job_id), expires_at)}"


def make_playback_token(
    signer: UrlSigner, job_id: uuid.UUID | str, expires_at: int, link_expires_at: int
) -> str:
    # The link's expiry is signed with the prefix, so it cannot be moved either.
    signature = signer.sign(f"{token_prefix(job_id)}{link_expires_at}", expires_at)
    return f"{expires_at}.{link_expires_at}.{signature}"


def read_token(
    signer: UrlSigner, job_id: uuid.UUID | str, token: str, now: float | None = None
) -> OutputToken | None:
    """The token's expiries if it is valid for this job now; None otherwise (never raises)."""
    fields = token.split(".")
    numbers = fields[:-1]
    if len(fields) not in (2, 3) or not all(_is_epoch(n) for n in numbers):
        return None
    expires_at = int(numbers[0])
    if len(numbers) == 1:
        ok = signer.verify(token_prefix(job_id), expires_at, fields[-1], now)
        return OutputToken(expires_at, expires_at) if ok else None
    link_expires_at = int(numbers[1])
    path = f"{token_prefix(job_id)}{link_expires_at}"
    if not signer.verify(path, expires_at, fields[-1], now):
        return None
    return OutputToken(expires_at, link_expires_at)


def verify_token(signer: UrlSigner, job_id: uuid.UUID | str, token: str) -> bool:
    return read_token(signer, job_id, token) is not None


def renewed_token(
    signer: UrlSigner,
    job_id: uuid.UUID | str,
    token: OutputToken,
    lifetime_seconds: int,
    now: float | None = None,
) -> str:
    """A playback token for the URIs of a playlist served under `token`."""
    start = int(time.time() if now is None else now)
    expires_at = min(start, token.link_expires_at) + lifetime_seconds
    return make_playback_token(signer, job_id, expires_at, token.link_expires_at)


def output_path(job_id: uuid.UUID | str, token: str, name: str) -> str:
    return token_prefix(job_id) + token + "/" + quote(name, safe="/")


def _is_epoch(text: str) -> bool:
    return 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()
