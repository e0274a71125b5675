"""Signed URLs: bound to one path and one expiry, short-lived, never raising."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from server.serving.claims import claims_of, stored_file_of
from server.serving.serve import StoredFile
from server.serving.signing import UrlSigner

SECRET = b"test secret that is long enough"
PATH_A = "/api/v1/videos/A/content"
PATH_B = "/api/v1/videos/B/content"
NOW = 1_700_000_000
EXPIRES = NOW + 300


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner(SECRET)


def test_signature_verifies_before_expiry(signer: UrlSigner) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(PATH_A, EXPIRES, signature, now=NOW) is True
    assert signer.verify(PATH_A, EXPIRES, signature, now=EXPIRES - 0.001) is True


def test_signature_matches_the_documented_construction(signer: UrlSigner) -> None:
    # Other parts (or other languages) can reproduce it from the spec alone.
    key = hmac.new(SECRET, b"frameflow url signing v1", hashlib.sha256).digest()
    digest = hmac.new(key, f"{PATH_A}\n{EXPIRES}".encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert signer.sign(PATH_A, EXPIRES) == expected


def test_signature_is_url_safe_and_unpadded(signer: UrlSigner) -> None:
    for expires in range(EXPIRES, EXPIRES + 200):
        signature = signer.sign(PATH_A, expires)
        assert len(signature) == 43
        assert set(signature) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_signing_key_is_derived_not_the_raw_secret(signer: UrlSigner) -> None:
    raw = hmac.new(SECRET, f"{PATH_A}\n{EXPIRES}".encode(), hashlib.sha256).digest()
    raw_token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert signer.sign(PATH_A, EXPIRES) != raw_token
    assert signer.verify(PATH_A, EXPIRES, raw_token, now=NOW) is False


@pytest.mark.parametrize(
    ("path", "expires"),
    [
        (PATH_B, EXPIRES),  # another video
        (PATH_A + "/", EXPIRES),
        (PATH_A.upper(), EXPIRES),
        ("/api/v1/videos/A", EXPIRES),  # a prefix
        (PATH_A + "?x=1", EXPIRES),
        (PATH_A, EXPIRES + 1),  # a later expiry
        (PATH_A, EXPIRES - 1),
        (PATH_A, EXPIRES * 10),
    ],
)
def test_signature_is_bound_to_path_and_expiry(signer: UrlSigner, path: str, expires: int) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(path, expires, signature, now=NOW) is False


def test_path_and_expiry_cannot_be_shifted_into_each_other(signer: UrlSigner) -> None:
    # "…/A\n1" + expiry 5 must not equal "…/A" + expiry "1\n5" or "15".
    signature = signer.sign(f"{PATH_A}\n1", 5)
    assert signer.verify(PATH_A, 15, signature, now=0) is False


def test_another_secret_does_not_verify(signer: UrlSigner) -> None:
    other = UrlSigner(b"another secret")
    assert other.verify(PATH_A, EXPIRES, signer.sign(PATH_A, EXPIRES), now=NOW) is False


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + 0.5, EXPIRES + 86_400])
def test_expired_signature_fails(signer: UrlSigner, now: float) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(PATH_A, EXPIRES, signature, now=now) is False


def test_verify_uses_the_real_clock_by_default(signer: UrlSigner) -> None:
    future = int(time.time()) + 60
    past = int(time.time()) - 1
    assert signer.verify(PATH_A, future, signer.sign(PATH_A, future)) is True
    assert signer.verify(PATH_A, past, signer.sign(PATH_A, past)) is False


def test_tampered_signature_fails(signer: UrlSigner) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert signer.verify(PATH_A, EXPIRES, flipped, now=NOW) is False
    # The last base64 character carries spare bits: a non-canonical twin must fail too.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = signature[:-1] + alphabet[alphabet.index(last) ^ 1]
    assert signer.verify(PATH_A, EXPIRES, twin, now=NOW) is False


MALFORMED_SIGNATURES: list[Any] = [
    "",
    "x",
    "=" * 43,
    "é" * 43,  # non-ASCII: compare_digest would raise on it
    "\x00" * 43,
    "a" * 44,
    "a" * 10_000,
    None,
    b"bytes",
    43,
]


@pytest.mark.parametrize("signature", MALFORMED_SIGNATURES)
def test_malformed_signature_fails_without_raising(signer: UrlSigner, signature: Any) -> None:
    assert signer.verify(PATH_A, EXPIRES, signature, now=NOW) is False


@pytest.mark.parametrize("expires", ["1700000300", None, 1.7e9, True, -1])
def test_malformed_expiry_fails_without_raising(signer: UrlSigner, expires: Any) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(PATH_A, expires, signature, now=NOW) is False


@pytest.mark.parametrize("path", ["\ud800", "/v/\udcff/content", "/v/\x00", "/v/\u00e9"])
def test_odd_paths_sign_and_verify_without_raising(signer: UrlSigner, path: str) -> None:
    signature = signer.sign(path, EXPIRES)
    assert signer.verify(path, EXPIRES, signature, now=NOW) is True
    assert signer.verify(PATH_A, EXPIRES, signature, now=NOW) is False


def test_verify_survives_a_path_that_is_not_a_string(signer: UrlSigner) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(object(), EXPIRES, signature, now=NOW) is False  # type: ignore[arg-type]


def test_signed_query_round_trip(signer: UrlSigner) -> None:
    query, expires = signer.signed_query(PATH_A, 300, now=NOW + 0.9)
    assert expires == EXPIRES
    assert query == {"expires": str(EXPIRES), "signature": signer.sign(PATH_A, EXPIRES)}
    assert signer.verify_query(PATH_A, query, now=NOW) is True
    assert signer.verify_query(PATH_B, query, now=NOW) is False
    assert signer.verify_query(PATH_A, query, now=EXPIRES) is False


def test_signed_query_defaults_to_the_real_clock(signer: UrlSigner) -> None:
    before = int(time.time())
    query, expires = signer.signed_query(PATH_A, 60)
    assert before + 60 <= expires <= int(time.time()) + 60
    assert signer.verify_query(PATH_A, query) is True


@pytest.mark.parametrize("ttl", [0, -1])
def test_signed_query_needs_a_positive_ttl(signer: UrlSigner, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        signer.signed_query(PATH_A, ttl)


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"expires": str(EXPIRES)},
        {"signature": "x" * 43},
        {"expires": "", "signature": "x" * 43},
        {"expires": "+1700000300", "signature": "x" * 43},
        {"expires": " 1700000300", "signature": "x" * 43},
        {"expires": "1_700_000_300", "signature": "x" * 43},
        {"expires": "1700000300.0", "signature": "x" * 43},
        {"expires": "-1", "signature": "x" * 43},
        {"expires": "\u0661" * 10, "signature": "x" * 43},
        {"expires": "9" * 5000, "signature": "x" * 43},
    ],
)
def test_verify_query_rejects_malformed_parameters(
    signer: UrlSigner, query: dict[str, str]
) -> None:
    assert signer.verify_query(PATH_A, query, now=NOW) is False


def test_verify_query_rejects_a_tampered_expiry(signer: UrlSigner) -> None:
    query, _ = signer.signed_query(PATH_A, 300, now=NOW)
    query["expires"] = str(EXPIRES + 3600)
    assert signer.verify_query(PATH_A, query, now=NOW) is False


@pytest.mark.parametrize("expires", [-1, 1.5, "1700000300", True])
def test_sign_rejects_a_bad_expiry(signer: UrlSigner, expires: Any) -> None:
    with pytest.raises(ValueError, match="expires_at"):
        signer.sign(PATH_A, expires)


@pytest.mark.parametrize("secret", [b"", "text secret", None])
def test_secret_must_be_non_empty_bytes(secret: Any) -> None:
    with pytest.raises(ValueError, match="secret"):
        UrlSigner(secret)


def test_repr_does_not_leak_the_key(signer: UrlSigner) -> None:
    assert SECRET.decode() not in repr(signer)
    assert "key hidden" in repr(signer)


def test_claims_are_signed_with_their_own_key(signer: UrlSigner) -> None:
    with_claims = signer.sign(PATH_A, EXPIRES, claims="abc_-09")
    assert signer.verify(PATH_A, EXPIRES, with_claims, now=NOW, claims="abc_-09") is True
    # Neither form verifies as the other, nor with other claims.
    assert signer.verify(PATH_A, EXPIRES, with_claims, now=NOW) is False
    assert (
        signer.verify(PATH_A, EXPIRES, signer.sign(PATH_A, EXPIRES), now=NOW, claims="abc") is False
    )
    assert signer.verify(PATH_A, EXPIRES, with_claims, now=NOW, claims="abc_-0") is False
    assert signer.verify(PATH_A, EXPIRES, with_claims, now=EXPIRES, claims="abc_-09") is False


@pytest.mark.parametrize("claims", ["", "a b", "a\nb", "a=", "é", "a" * 5000])
def test_malformed_claims_fail_without_raising(signer: UrlSigner, claims: str) -> None:
    signature = signer.sign(PATH_A, EXPIRES)
    assert signer.verify(PATH_A, EXPIRES, signature, now=NOW, claims=claims) is False
    with pytest.raises(ValueError):
        signer.sign(PATH_A, EXPIRES, claims=claims)


def test_claims_round_trip() -> None:
    obj = StoredFile(
        key="videos/a/b/source",
        size=123,
        etag_token="f" * 64,
        last_modified=datetime(2026, 11, 28, 21, 31, 6, 161810, tzinfo=UTC),
        content_type="video/mp4",
        filename='été "x".mp4',
    )
    assert stored_file_of(claims_of(obj)) == obj
    assert stored_file_of("not-claims") is None
    assert stored_file_of(claims_of(obj)[:-4]) is None
