"""Parse a `Range` request header (RFC 9110 §14) into at most one byte range.

Frameflow answers a single-part 206 or nothing: a multi-range or abusive
header costs no more than one range, and multipart/byteranges is never built.
`None` means "ignore the header and send the full 200", which the RFC allows
for any header a server does not want to honour.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import RangeNotSatisfiable

__all__ = [
    "MAX_HEADER_LENGTH",
    "MAX_RANGES",
    "ByteRange",
    "RangeNotSatisfiable",
    "parse_range_header",
]

# Bounds that make the work on a hostile header O(1): longer or busier headers
# are ignored without being split or parsed.
MAX_HEADER_LENGTH = 1024
MAX_RANGES = 100
# 19 digits covers every 63-bit size; more is never a real file, and capping it
# keeps int() away from huge-number conversions.
_MAX_DIGITS = 19
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `start` through `end` of a representation, both inclusive."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range {self.start}-{self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range_header(header: str | None, size: int) -> ByteRange | None:
    """The first satisfiable range of `header` for a representation of `size` bytes.

    Returns None when there is no header, it is not in `bytes`, or it is
    syntactically invalid or too large; raises RangeNotSatisfiable when it is
    valid but no range in it overlaps the representation.
    """
    if size < 0:
        raise ValueError("size must not be negative")
    if not header or len(header) > MAX_HEADER_LENGTH:
        return None
    unit, sep, range_set = header.strip(_OWS).partition("=")
    if not sep or unit.lower() != "bytes":
        return None
    # maxsplit bounds the list even if the header is all commas.
    elements = range_set.split(",", MAX_RANGES)
    if len(elements) > MAX_RANGES:
        return None
    specs: list[tuple[int | None, int | None]] = []
    for element in elements:
        # RFC 9110 §5.6.1.2: OWS around commas, and empty list elements, are tolerated.
        element = element.strip(_OWS)
        if not element:
            continue
        spec = _parse_spec(element)
        if spec is None:
            return None  # one bad spec makes the whole header invalid, so ignore it
        specs.append(spec)
    if not specs:
        return None
    for first, last in specs:
        satisfiable = _resolve(first, last, size)
        if satisfiable is not None:
            return satisfiable
    raise RangeNotSatisfiable(size)


def _parse_spec(spec: str) -> tuple[int | None, int | None] | None:
    """`a-b` → (a, b), `a-` → (a, None), `-n` → (None, n); None if malformed."""
    first_text, sep, last_text = spec.partition("-")
    if not sep:
        return None
    first = _parse_digits(first_text) if first_text else None
    last = _parse_digits(last_text) if last_text else None
    if (first_text and first is None) or (last_text and last is None):
        return None
    if first is None and last is None:
        return None  # a bare "-"
    if first is not None and last is not None and last < first:
        return None  # RFC 9110 §14.1.1: last-pos below first-pos is invalid
    return first, last


def _parse_digits(text: str) -> int | None:
    # int() alone would also take "+1", " 1", "1_0" and non-ASCII digits.
    if len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _resolve(first: int | None, last: int | None, size: int) -> ByteRange | None:
    """The part of a parsed spec inside [0, size), or None if there is none."""
    if size == 0:
        return None  # a 0-byte body has no byte to point at; Content-Range cannot say "empty"
    if first is None:
        assert last is not None
        if last == 0:
            return None  # "-0" asks for no bytes at all
        return ByteRange(max(0, size - last), size - 1)
    if first >= size:
        return None
    return ByteRange(first, size - 1 if last is None else min(last, size - 1))
