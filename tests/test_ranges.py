"""Range parsing (RFC 9110 §14) and the conditional checks that gate it (§13)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.errors import HTTPError
from server.serving.conditional import (
    http_date,
    if_modified_since_not_modified,
    if_none_match_matches,
    if_range_allows,
    make_etag,
    parse_http_date,
)
from server.serving.ranges import (
    MAX_HEADER_LENGTH,
    ByteRange,
    RangeNotSatisfiable,
    parse_range_header,
)

SIZE = 100


# --- ranges: satisfiable ---------------------------------------------------

SATISFIABLE = [
    ("bytes=0-0", SIZE, (0, 0)),
    ("bytes=0-9", SIZE, (0, 9)),
    ("bytes=10-19", SIZE, (10, 19)),
    ("bytes=99-99", SIZE, (99, 99)),
    ("bytes=0-", SIZE, (0, 99)),
    ("bytes=50-", SIZE, (50, 99)),
    ("bytes=99-", SIZE, (99, 99)),
    ("bytes=-1", SIZE, (99, 99)),
    ("bytes=-10", SIZE, (90, 99)),
    ("bytes=-100", SIZE, (0, 99)),
    # A suffix longer than the file is the whole file.
    ("bytes=-1000", SIZE, (0, 99)),
    # The end is clamped to the last byte.
    ("bytes=0-1000", SIZE, (0, 99)),
    ("bytes=90-9999999999999999999", SIZE, (90, 99)),
    ("bytes=0-0", 1, (0, 0)),
    ("bytes=-1", 1, (0, 0)),
    ("bytes=0-", 1, (0, 0)),
    # Unit names are case-insensitive.
    ("Bytes=0-1", SIZE, (0, 1)),
    ("BYTES=0-1", SIZE, (0, 1)),
    # Leading zeros are still digits.
    ("bytes=007-010", SIZE, (7, 10)),
    # OWS around list elements, and around the whole field value.
    ("bytes= 0-1", SIZE, (0, 1)),
    ("bytes=0-1 ", SIZE, (0, 1)),
    ("  bytes=0-1\t", SIZE, (0, 1)),
    ("bytes=0-1 ,\t5-9", SIZE, (0, 1)),
    # Empty list elements are tolerated (RFC 9110 §5.6.1.2).
    ("bytes=0-1,", SIZE, (0, 1)),
    ("bytes=,0-1", SIZE, (0, 1)),
    ("bytes=0-1,,5-9", SIZE, (0, 1)),
    ("bytes=, ,0-1", SIZE, (0, 1)),
    # Multi-range: only the first satisfiable range is answered.
    ("bytes=0-1,5-9", SIZE, (0, 1)),
    ("bytes=5-9,0-1", SIZE, (5, 9)),
    ("bytes=500-600,20-29", SIZE, (20, 29)),
    ("bytes=-0,20-29", SIZE, (20, 29)),
    ("bytes=0-0,0-0,0-0,0-0", SIZE, (0, 0)),
    ("bytes=0-,0-,0-", SIZE, (0, 99)),
    # Large but sane numbers.
    ("bytes=5000000000-", 6_000_000_000, (5_000_000_000, 5_999_999_999)),
]


@pytest.mark.parametrize(("header", "size", "expected"), SATISFIABLE)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range_header(header, size) == ByteRange(*expected)


# --- ranges: ignored (None → full 200) -------------------------------------

IGNORED = [
    None,
    "",
    " ",
    # Other or missing units.
    "items=0-1",
    "bits=0-1",
    "none",
    "bytes",
    "bytes0-1",
    "0-1",
    "=0-1",
    "bytes =0-1",
    "byte=0-1",
    # Empty or degenerate range sets.
    "bytes=",
    "bytes=,",
    "bytes= , ",
    "bytes=-",
    "bytes=--1",
    "bytes=0--1",
    "bytes=1-2-3",
    # last-pos below first-pos is syntactically invalid.
    "bytes=5-2",
    "bytes=1-0",
    # Not digits, or not only ASCII digits.
    "bytes=a-b",
    "bytes=0-b",
    "bytes=+1-2",
    "bytes=1-+2",
    "bytes=-+1",
    "bytes=1_0-20",
    "bytes=0x10-20",
    "bytes=1.5-2",
    "bytes=\uff11-2",  # fullwidth 1
    "bytes=\u0661-2",  # Arabic-Indic 1
    "bytes=\u00b2-3",  # superscript 2 (str.isdigit is true for it)
    # Whitespace inside a range-spec.
    "bytes=0 -1",
    "bytes=0- 1",
    "bytes=1 0-20",
    # Trailing junk.
    "bytes=0-1;q=1",
    "bytes=0-1 x",
    "bytes=0-1=2",
    # One bad spec in a list spoils the whole header.
    "bytes=0-1,garbage",
    "bytes=0-1,5-2",
    "bytes=garbage,0-1",
    # Digit-length cap: no huge-integer work.
    "bytes=" + "9" * 20 + "-",
    "bytes=0-" + "9" * 20,
    "bytes=-" + "9" * 20,
    "bytes=0-" + "9" * 1000,
]


@pytest.mark.parametrize("header", IGNORED)
@pytest.mark.parametrize("size", [0, 1, SIZE])
def test_invalid_or_foreign_headers_are_ignored(header: str | None, size: int) -> None:
    assert parse_range_header(header, size) is None


# --- ranges: 416 -----------------------------------------------------------

UNSATISFIABLE = [
    ("bytes=100-", SIZE),
    ("bytes=100-200", SIZE),
    ("bytes=1000-2000", SIZE),
    ("bytes=-0", SIZE),
    ("bytes=100-,200-", SIZE),
    ("bytes=-0,100-", SIZE),
    ("bytes=1-", 1),
    ("bytes=" + "9" * 19 + "-", SIZE),
    # Any range on a 0-byte object.
    ("bytes=0-0", 0),
    ("bytes=0-", 0),
    ("bytes=-1", 0),
    ("bytes=-0", 0),
    ("bytes=0-1,5-9", 0),
]


@pytest.mark.parametrize(("header", "size"), UNSATISFIABLE)
def test_unsatisfiable_ranges_raise_416(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range_header(header, size)
    assert info.value.size == size
    assert info.value.status == 416
    assert info.value.headers == {"Content-Range": f"bytes */{size}"}
    assert isinstance(info.value, HTTPError)  # rendered by the one error middleware


# --- ranges: abuse limits --------------------------------------------------


def test_header_just_under_the_length_limit_is_parsed() -> None:
    header = "bytes=0-1," + " " * (MAX_HEADER_LENGTH - len("bytes=0-1,"))
    assert len(header) == MAX_HEADER_LENGTH
    assert parse_range_header(header, SIZE) == ByteRange(0, 1)


def test_header_over_the_length_limit_is_ignored() -> None:
    header = "bytes=0-1," + " " * (MAX_HEADER_LENGTH - len("bytes=0-1,") + 1)
    assert parse_range_header(header, SIZE) is None


def test_hundred_ranges_are_accepted_and_one_more_is_not() -> None:
    assert parse_range_header("bytes=" + ",".join(["0-0"] * 100), SIZE) == ByteRange(0, 0)
    assert parse_range_header("bytes=" + ",".join(["0-0"] * 101), SIZE) is None
    assert parse_range_header("bytes=" + "," * 150, SIZE) is None


@pytest.mark.parametrize(
    "header",
    [
        "bytes=" + "0-1," * 2_000_000,
        "bytes=" + "," * 5_000_000,
        "bytes=0-" + "9" * 5_000_000,
        "x" * 10_000_000,
    ],
    ids=["many-ranges", "many-commas", "long-number", "long-junk"],
)
def test_giant_headers_are_rejected_without_parsing(header: str) -> None:
    started = time.perf_counter()
    for _ in range(1000):
        assert parse_range_header(header, SIZE) is None
    # A length check per call, not a scan: a scan of these headers takes ~10 ms
    # each (10 s for the loop); the bound is loose for shared, noisy machines.
    assert time.perf_counter() - started < 5


def test_negative_size_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="size"):
        parse_range_header("bytes=0-1", -1)


# --- ByteRange -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "length", "content_range"),
    [
        (0, 0, 1, "bytes 0-0/100"),
        (0, 99, 100, "bytes 0-99/100"),
        (10, 19, 10, "bytes 10-19/100"),
        (99, 99, 1, "bytes 99-99/100"),
    ],
)
def test_byte_range_length_and_content_range(
    start: int, end: int, length: int, content_range: str
) -> None:
    byte_range = ByteRange(start, end)
    assert byte_range.length == length
    assert byte_range.content_range(100) == content_range


@pytest.mark.parametrize(("start", "end"), [(-1, 0), (5, 4), (-5, -1)])
def test_byte_range_rejects_impossible_bounds(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="invalid byte range"):
        ByteRange(start, end)


def test_byte_range_is_frozen() -> None:
    byte_range = ByteRange(0, 1)
    with pytest.raises(AttributeError):
        byte_range.start = 5  # type: ignore[misc]


# --- conditional: ETags ----------------------------------------------------

ETAG = '"abc123"'
LAST_MODIFIED = datetime(2024, 5, 17, 12, 30, 45, 987654, tzinfo=UTC)
LAST_MODIFIED_HTTP = "Fri, 17 May 2024 12:30:45 GMT"


@pytest.mark.parametrize(
    ("token", "etag"),
    [("abc123", '"abc123"'), ("", '""'), ("v1-2.3_x", '"v1-2.3_x"'), ("a,b", '"a,b"')],
)
def test_make_etag_is_strong_and_quoted(token: str, etag: str) -> None:
    assert make_etag(token) == etag


@pytest.mark.parametrize("token", ['a"b', "a b", "a\r\nSet-Cookie: x=1", "a\x00", "caf\u00e9"])
def test_make_etag_rejects_characters_that_break_the_header(token: str) -> None:
    with pytest.raises(ValueError, match="entity-tag"):
        make_etag(token)


IF_NONE_MATCH = [
    (None, False),
    ("", False),
    ("*", True),
    (" * ", True),
    ('"abc123"', True),
    ('W/"abc123"', True),  # weak comparison for 304s
    ('"other"', False),
    ('"other", "abc123"', True),
    ('"other",W/"abc123"', True),
    ('"other" ,\t"abc123"', True),
    ('"other", , "abc123",', True),
    ('"a,b", "abc123"', True),  # a comma inside an opaque tag is not a separator
    ('"abc123', False),
    ("abc123", False),  # unquoted: malformed
    ('"abc123"x', False),
    ('"other" "abc123"', False),  # missing comma: malformed list
    ('w/"abc123"', False),  # the weak prefix is case-sensitive
    ('"ABC123"', False),
    ('*, "abc123"', False),  # * is only valid alone
]


@pytest.mark.parametrize(("header", "expected"), IF_NONE_MATCH)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert if_none_match_matches(header, ETAG) is expected


def test_if_none_match_compares_weakly_against_a_weak_etag() -> None:
    assert if_none_match_matches('"abc123"', 'W/"abc123"') is True


IF_RANGE = [
    (None, True),  # no If-Range: the range stands
    ('"abc123"', True),
    (' "abc123" ', True),
    ('W/"abc123"', False),  # weak tags never match If-Range
    ('"other"', False),
    ('"abc123', False),
    ('"abc123", "x"', False),  # If-Range takes one validator, not a list
    (LAST_MODIFIED_HTTP, True),
    ("Friday, 17-May-24 12:30:45 GMT", True),  # RFC 850
    ("Fri May 17 12:30:45 2024", True),  # asctime
    ("Fri, 17 May 2024 12:30:44 GMT", False),  # a second early
    ("Fri, 17 May 2024 12:30:46 GMT", False),  # a later date is not "exactly equal"
    ("Fri, 17 May 2024 14:30:45 +0200", True),  # same instant
    ("", False),
    ("garbage", False),
    ("Fri, 32 May 2024 12:30:45 GMT", False),
    ("x" * 5000, False),
]


@pytest.mark.parametrize(("header", "expected"), IF_RANGE)
def test_if_range(header: str | None, expected: bool) -> None:
    assert if_range_allows(header, ETAG, LAST_MODIFIED) is expected


def test_if_range_never_matches_when_our_etag_is_weak() -> None:
    assert if_range_allows('"abc123"', 'W/"abc123"', LAST_MODIFIED) is False


def test_if_range_takes_a_naive_last_modified_as_utc() -> None:
    naive = LAST_MODIFIED.replace(tzinfo=None)
    assert if_range_allows(LAST_MODIFIED_HTTP, ETAG, naive) is True


# --- conditional: dates ----------------------------------------------------

NOW = datetime(2024, 6, 1, tzinfo=UTC)

IF_MODIFIED_SINCE = [
    (None, False),
    ("", False),
    ("garbage", False),
    (LAST_MODIFIED_HTTP, True),  # equal to the second: microseconds are ignored
    ("Sat, 18 May 2024 00:00:00 GMT", True),
    ("Fri, 17 May 2024 12:30:44 GMT", False),
    ("Mon, 01 Jan 1990 00:00:00 GMT", False),
    ("Mon, 01 Jan 2035 00:00:00 GMT", False),  # in the future: ignored
    ("Sat, 01 Jun 2024 00:00:00 GMT", True),  # exactly now
    ("Sat, 01 Jun 2024 00:00:01 GMT", False),
]


@pytest.mark.parametrize(("header", "expected"), IF_MODIFIED_SINCE)
def test_if_modified_since(header: str | None, expected: bool) -> None:
    assert if_modified_since_not_modified(header, LAST_MODIFIED, now=NOW) is expected


def test_if_modified_since_defaults_to_the_real_clock() -> None:
    assert if_modified_since_not_modified(LAST_MODIFIED_HTTP, LAST_MODIFIED) is True
    future = http_date(datetime.now(UTC) + timedelta(days=1))
    assert if_modified_since_not_modified(future, LAST_MODIFIED) is False


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (LAST_MODIFIED, LAST_MODIFIED_HTTP),
        (datetime(1994, 11, 6, 8, 49, 37), "Sun, 06 Nov 1994 08:49:37 GMT"),
        (
            datetime(1994, 11, 6, 10, 49, 37, tzinfo=timezone(timedelta(hours=2))),
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ),
    ],
)
def test_http_date(dt: datetime, expected: str) -> None:
    assert http_date(dt) == expected


def test_http_date_round_trips_through_parse() -> None:
    assert parse_http_date(http_date(LAST_MODIFIED)) == LAST_MODIFIED.replace(microsecond=0)


@pytest.mark.parametrize("value", ["", "garbage", "Fri, 17 May 2024", "x" * 100, "\x00"])
def test_parse_http_date_rejects_garbage(value: str) -> None:
    assert parse_http_date(value) is None
