"""What a search asks for and what it finds.

The bucket tables are the one definition of the `duration` and `uploaded`
filters and facets: the SQL is generated from them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from server.videos.model import Video

# name -> [lower, upper) in seconds; None is open.
DURATION_BUCKETS: dict[str, tuple[float | None, float | None]] = {
    "short": (None, 60.0),
    "medium": (60.0, 600.0),
    "long": (600.0, None),
}
# name -> uploaded within this many days (they nest: a video of today is in all).
UPLOADED_WINDOWS: dict[str, int] = {"day": 1, "week": 7, "month": 30, "year": 365}
KINDS = ("video", "image")
Sort = Literal["relevance", "date"]


@dataclass(frozen=True)
class SearchFilters:
    kind: str | None = None
    status: str | None = None
    duration: str | None = None
    uploaded: str | None = None
    tags: tuple[str, ...] = ()  # all of them

    @property
    def empty(self) -> bool:
        return self == SearchFilters()


@dataclass(frozen=True)
class SearchText:
    """The words of a query: `tsquery` for full-text search (the last word a
    prefix, for search-as-you-type), `raw` for typo-tolerant matching."""

    raw: str
    tsquery: str


@dataclass(frozen=True)
class SearchQuery:
    text: SearchText | None
    filters: SearchFilters = field(default_factory=SearchFilters)
    sort: Sort = "date"
    limit: int = 20
    # Keyset cursors: (created_at, id) for date, (score, id) for relevance.
    after_date: tuple[datetime, uuid.UUID] | None = None
    after_score: tuple[float, uuid.UUID] | None = None

    @property
    def first_page(self) -> bool:
        return self.after_date is None and self.after_score is None


@dataclass(frozen=True)
class SearchHit:
    video: Video
    score: float | None
    # ts_headline output with matches between \x02 and \x03 (None: nothing to show).
    title_marked: str | None = None
    description_marked: str | None = None


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    """Counts over everything the query matches (not just this page): each of kind,
    status, duration and uploaded with every filter but its own; tags with all."""

    kind: list[FacetCount]
    status: list[FacetCount]
    duration: list[FacetCount]
    uploaded: list[FacetCount]
    tags: list[FacetCount]
    # False: a large library's common word; counted over the newest matches only.
    complete: bool = True


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    has_more: bool
    sort: Sort
    facets: Facets | None  # first page only
    typo_tolerance: bool


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: Literal["title", "tag"]
    video_id: uuid.UUID | None = None
    count: int | None = None
