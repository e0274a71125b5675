"""Signed, header-free URLs for job outputs.

A token in the *path* — `/api/v1/jobs/{id}/t/{expires}.{signature}/{name}` —
rather than the query string, so that the relative URIs inside an HLS
playlist (`720p/index.m3u8`, `segment_00001.ts`) resolve to URLs that carry
the same token, and any player plays the master playlist without custom
headers. The signature covers the job's token prefix and the expiry: one
token opens every output of that job until it expires.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from server.serving.signing import UrlSigner


def token_prefix(job_id: uuid.UUID | str) -> str:
    return f"/api/v1/jobs/{job_id}/t/"


def make_token(signer: UrlSigner, job_id: uuid.UUID | str, expires_at: int) -> str:
    return f"{expires_at}.{signer.sign(token_prefix(job_id), expires_at)}"


def verify_token(signer: UrlSigner, job_id: uuid.UUID | str, token: str) -> bool:
    expires, dot, signature = token.partition(".")
    if not dot or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return False
    return signer.verify(token_prefix(job_id), int(expires), signature)


def output_path(job_id: uuid.UUID | str, token: str, name: str) -> str:
    return token_prefix(job_id) + token + "/" + quote(name, safe="/")
