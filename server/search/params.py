"""The query string of GET /api/v1/videos as a `SearchQuery`, or a 400 naming the parameter.

Keyset cursors: date order reuses `server.pagination` ((created_at, id));
relevance order has its own, (score, id), so that one cannot be replayed
against the other.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Mapping

from multidict import MultiMapping

from server.errors import BadRequest
from server.pagination import MAX_CURSOR_CHARS, decode_cursor, encode_cursor
from server.search.model import (
    DURATION_BUCKETS,
    KINDS,
    UPLOADED_WINDOWS,
    SearchFilters,
    SearchHit,
    SearchQuery,
    Sort,
)
from server.search.text import MAX_QUERY_CHARS, search_text
from server.videos.metadata import MAX_TAG_CHARS, MAX_TAGS

# Any of these turns the plain list into a search.
SEARCH_PARAMS = ("q", "kind", "status", "duration", "uploaded", "tag", "sort")
MAX_STATUS_CHARS = 32
_SCORE_CURSOR = "s"


def is_search(query: Mapping[str, str]) -> bool:
    return any(name in query for name in SEARCH_PARAMS)


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_query", field=name)


def _choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise _bad(name, f"'{name}' must be one of {', '.join(choices)}")
    return value


def parse_search(query: MultiMapping[str], *, limit: int) -> SearchQuery:
    q = query.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise _bad("q", f"'q' is longer than {MAX_QUERY_CHARS} characters")
    text = search_text(q)
    status = query.get("status") or None
    if status is not None and (len(status) > MAX_STATUS_CHARS or not status.isascii()):
        raise _bad("status", "'status' is not a status")
    tags = tuple(dict.fromkeys(" ".join(t.split()).lower() for t in query.getall("tag", [])))
    if len(tags) > MAX_TAGS or any(not t or len(t) > MAX_TAG_CHARS for t in tags):
        raise _bad("tag", f"at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} characters")
    filters = SearchFilters(
        kind=_choice(query, "kind", KINDS),
        status=status,
        duration=_choice(query, "duration", tuple(DURATION_BUCKETS)),
        uploaded=_choice(query, "uploaded", tuple(UPLOADED_WINDOWS)),
        tags=tags,
    )
    default: Sort = "relevance" if text is not None else "date"
    sort: Sort = _choice(query, "sort", ("relevance", "date")) or default  # type: ignore[assignment]
    if text is None:
        sort = "date"
    cursor = query.get("cursor")
    after_date = after_score = None
    if cursor:
        if sort == "date":
            after_date = decode_cursor(cursor)
        else:
            after_score = decode_score_cursor(cursor)
    return SearchQuery(
        text=text,
        filters=filters,
        sort=sort,
        limit=limit,
        after_date=after_date,
        after_score=after_score,
    )


def next_cursor(hit: SearchHit, sort: Sort) -> str:
    if sort == "date" or hit.score is None:
        return encode_cursor(hit.video)
    raw = json.dumps([_SCORE_CURSOR, hit.score, str(hit.video.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_score_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mark, score, row_id = json.loads(raw)
        if mark != _SCORE_CURSOR or not isinstance(score, int | float) or isinstance(score, bool):
            raise ValueError("not a relevance cursor")
        if not math.isfinite(score) or not isinstance(row_id, str):
            raise ValueError("bad fields")
        return float(score), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError):
        raise _bad("cursor", "Invalid cursor") from None
