"""JSON of search results: each hit is the video's usual JSON plus `search`."""

from __future__ import annotations

from typing import Any

from server.search.model import FacetCount, Facets, SearchHit, SearchPage, Suggestion
from server.search.params import next_cursor
from server.videos.serializers import video_json

_START, _STOP = "\x02", "\x03"


def highlight_segments(marked: str | None) -> list[dict[str, Any]] | None:
    """`a \x02b\x03 c` → [{text: "a ", match: false}, {text: "b", match: true}, ...];
    None when nothing in it matched. Plain data: the page makes <mark>s itself."""
    if not marked or _START not in marked:
        return None
    segments: list[dict[str, Any]] = []
    for i, piece in enumerate(marked.split(_START)):
        matched, _, rest = piece.partition(_STOP) if i else ("", "", piece)
        if matched:
            segments.append({"text": matched, "match": True})
        if rest:
            segments.append({"text": rest, "match": False})
    return segments


def hit_json(hit: SearchHit) -> dict[str, Any]:
    body = video_json(hit.video)
    body["search"] = {
        "score": hit.score,
        "highlight": {
            "title": highlight_segments(hit.title_marked),
            "description": highlight_segments(hit.description_marked),
        },
    }
    return body


def _counts(counts: list[FacetCount]) -> list[dict[str, Any]]:
    return [{"value": c.value, "count": c.count} for c in counts]


def facets_json(facets: Facets) -> dict[str, Any]:
    return {
        "kind": _counts(facets.kind),
        "status": _counts(facets.status),
        "duration": _counts(facets.duration),
        "uploaded": _counts(facets.uploaded),
        "tags": _counts(facets.tags),
    }


def search_page_json(page: SearchPage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": [hit_json(h) for h in page.hits],
        "next_cursor": next_cursor(page.hits[-1], page.sort) if page.has_more else None,
        "sort": page.sort,
        "typo_tolerance": page.typo_tolerance,
    }
    if page.facets is not None:
        body["facets"] = facets_json(page.facets)
        # False: a common word in a large library; the counts (and the ranking) cover
        # its newest matches only.
        body["facets_complete"] = page.facets.complete
    return body


def suggestion_json(s: Suggestion) -> dict[str, Any]:
    body: dict[str, Any] = {"text": s.text, "kind": s.kind}
    if s.video_id is not None:
        body["video_id"] = str(s.video_id)
    if s.count is not None:
        body["count"] = s.count
    return body
