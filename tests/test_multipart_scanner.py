"""The multipart file part's end, found in reads of any size (no server, no I/O).

`DelimiterScanner` hands reads through uncopied and holds back only an end that
could begin the delimiter; these properties split bodies full of near-delimiters
at arbitrary points and check the part comes out byte for byte.
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from server.uploads.form import DelimiterScanner

DELIMITER = b"\r\n--frameflow-boundary"
# Bytes that make near-misses likely: every prefix of the delimiter, and its parts.
PIECES = [DELIMITER[:n] for n in range(1, len(DELIMITER))] + [b"\r", b"\n", b"-", b"x", b"\x00"]
PROPERTY = hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None)


def scan(reads: list[bytes]) -> tuple[bytes, bytes | None]:
    scanner = DelimiterScanner(DELIMITER)
    body: list[bytes] = []
    for data in reads:
        part, rest = scanner.feed(data)
        body.append(part)
        if rest is not None:
            return b"".join(body), rest
    return b"".join(body), None


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


@PROPERTY
@given(
    file=st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    after=st.binary(max_size=16),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_the_part_is_everything_before_the_first_delimiter(
    file: bytes, after: bytes, cuts: list[int]
) -> None:
    stream = file + DELIMITER + after
    expected_end = stream.find(DELIMITER)  # the file itself may hold the delimiter
    body, rest = scan(split(stream, cuts))
    assert body == stream[:expected_end]
    assert rest is not None
    # What follows the delimiter in the read that completed it (later reads are the caller's).
    assert stream[expected_end + len(DELIMITER) :].startswith(rest)


@PROPERTY
@given(
    file=st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_without_a_delimiter_nothing_is_lost_and_little_is_held(
    file: bytes, cuts: list[int]
) -> None:
    if DELIMITER in file:
        return
    scanner = DelimiterScanner(DELIMITER)
    out = []
    for data in split(file, cuts):
        part, rest = scanner.feed(data)
        assert rest is None
        out.append(part)
    handed = b"".join(out)
    held = file[len(handed) :]
    assert file.startswith(handed)
    # Only a possible start of the delimiter is held back.
    assert len(held) < len(DELIMITER) and DELIMITER.startswith(held)


def test_a_read_without_a_delimiter_start_is_handed_back_uncopied() -> None:
    data = b"\x00\x01" * 4096
    part, rest = DelimiterScanner(DELIMITER).feed(data)
    assert part is data and rest is None
