"""tus header parsing and rendering (pure)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from server.errors import BadRequest
from server.tus import headers


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ("", {}),
        (f"filename {b64('a b.mp4')}", {"filename": "a b.mp4"}),
        (
            f"filename {b64('ünï.mp4')},is_confidential",
            {"filename": "ünï.mp4", "is_confidential": ""},
        ),
        (
            f" process {b64('frames,thumbnail')} , ttl {b64('3600')}",
            {"process": "frames,thumbnail", "ttl": "3600"},
        ),
    ],
)
def test_metadata_parses(raw: str | None, expected: dict[str, str]) -> None:
    assert headers.parse_metadata(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "filename not-base64!",
        f"filename {b64('a')},filename {b64('b')}",
        "bad key x",
        "k " + base64.b64encode(bytes([0xFF])).decode(),  # not UTF-8
        "x" * 5000,
    ],
)
def test_malformed_metadata_is_400(raw: str) -> None:
    with pytest.raises(BadRequest):
        headers.parse_metadata(raw)


def test_metadata_round_trips() -> None:
    pairs = {"filename": "ünï.mp4", "flag": ""}
    assert headers.parse_metadata(headers.format_metadata(pairs)) == pairs


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256"])
def test_checksum(algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"abc").digest()
    parsed = headers.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed is not None and parsed.digest == digest
    hasher = parsed.hasher()
    hasher.update(b"abc")
    assert hasher.digest() == digest


@pytest.mark.parametrize(
    "raw", ["crc32 AAAA", "sha1 !!!", "sha1 " + base64.b64encode(b"short").decode()]
)
def test_bad_checksums_are_400(raw: str) -> None:
    with pytest.raises(BadRequest):
        headers.parse_checksum(raw)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"Upload-Length": "10"}, 10),
        ({"Upload-Length": "0"}, 0),
        ({"Upload-Defer-Length": "1"}, None),
    ],
)
def test_creation_length(given: dict[str, str], expected: int | None) -> None:
    assert headers.parse_creation_length(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"Upload-Length": "10", "Upload-Defer-Length": "1"},
        {"Upload-Defer-Length": "0"},
        {"Upload-Length": "-1"},
        {"Upload-Length": "1e3"},
        {"Upload-Length": "99999999999999999999"},
    ],
)
def test_bad_creation_lengths_are_400(given: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        headers.parse_creation_length(given)


def test_http_date() -> None:
    moment = datetime(2014, 6, 25, 16, 0, tzinfo=UTC)
    assert headers.http_date(moment) == "Wed, 25 Jun 2014 16:00:00 GMT"
