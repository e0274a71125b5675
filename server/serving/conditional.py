"""Validators and conditional-request checks (RFC 9110 §8.8, §13), pure functions.

Handlers decide the order (If-None-Match before If-Modified-Since, If-Range
only when a Range is present); these only answer one question each.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

__all__ = [
    "http_date",
    "if_modified_since_not_modified",
    "if_none_match_matches",
    "if_range_allows",
    "make_etag",
    "parse_http_date",
]

# etagc = %x21 / %x23-7E / obs-text; obs-text is left out so tags stay ASCII.
_ETAGC = r"[\x21\x23-\x7e]*"
_TOKEN_RE = re.compile(_ETAGC)
_ENTITY_TAG_RE = re.compile(rf'(W/)?("{_ETAGC}")')
_LIST_SEP_RE = re.compile(r"[ \t]*,[ \t]*")
# No HTTP-date is this long; anything longer is not worth handing to the parser.
_MAX_DATE_LENGTH = 64


def make_etag(token: str) -> str:
    """A strong ETag for `token`, quoted; rejects characters that could break the header."""
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"not a valid entity-tag token: {token!r}")
    return f'"{token}"'


def http_date(dt: datetime) -> str:
    """IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`; naive datetimes are taken as UTC."""
    return format_datetime(_as_utc(dt).replace(microsecond=0), usegmt=True)


def parse_http_date(value: str) -> datetime | None:
    """An aware UTC datetime from any of the three HTTP-date forms, or None."""
    if len(value) > _MAX_DATE_LENGTH:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _as_utc(parsed)


def if_range_allows(if_range: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether a Range may be honoured given If-Range (RFC 9110 §13.1.5).

    No header allows the range. An entity-tag must match `etag` strongly (weak
    tags never do); a date must equal Last-Modified to the second; anything
    else is false, which means "send the whole representation".
    """
    if if_range is None:
        return True
    value = if_range.strip(" \t")
    if value.startswith(('"', "W/")):
        match = _ENTITY_TAG_RE.fullmatch(value)
        if match is None or match.group(1) or etag.startswith("W/"):
            return False
        return match.group(2) == etag
    parsed = parse_http_date(value)
    return parsed is not None and parsed == _truncate(last_modified)


def if_none_match_matches(header: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` under weak comparison, i.e. a 304 is due.

    `*` matches any existing representation. A malformed list matches nothing,
    so the client simply gets the full response.
    """
    if header is None:
        return False
    value = header.strip(" \t")
    if value == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in _parse_etag_list(value))


def if_modified_since_not_modified(
    header: str | None, last_modified: datetime, *, now: datetime | None = None
) -> bool:
    """Whether If-Modified-Since shows the client's copy is current, i.e. a 304 is due.

    Unparseable dates are ignored (RFC 9110 §13.1.3), and so are dates in the
    future: a clock-skewed client would otherwise be stuck with a stale copy.
    Callers must skip this check when If-None-Match is present.
    """
    if header is None:
        return False
    since = parse_http_date(header.strip(" \t"))
    if since is None or since > _as_utc(now or datetime.now(UTC)):
        return False
    return _truncate(last_modified) <= since


def _parse_etag_list(value: str) -> list[str]:
    """Entity-tags of a `#entity-tag` list, or [] if any element is malformed.

    A plain split on commas is wrong here: a comma is a legal etagc.
    """
    tags: list[str] = []
    pos = 0
    while pos < len(value):
        sep = _LIST_SEP_RE.match(value, pos)
        if sep is not None:
            pos = sep.end()  # empty list elements are allowed
            continue
        match = _ENTITY_TAG_RE.match(value, pos)
        if match is None:
            return []
        tags.append(match.group(0))
        pos = match.end()
        sep = _LIST_SEP_RE.match(value, pos)
        if pos < len(value) and sep is None:
            return []  # junk glued to a tag, e.g. `"a"b`
    return tags


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _truncate(dt: datetime) -> datetime:
    # HTTP dates carry whole seconds; the stored time usually has microseconds.
    return _as_utc(dt).replace(microsecond=0)
