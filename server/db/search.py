"""SQL of video search: the match, filters, keyset pages, facets, suggestions.

Queries are assembled from constant fragments; every value the user sent
travels as a bind parameter. `typo_tolerant` adds pg_trgm's `<%`
(word similarity against the title) as a second way to match — only ever
passed True when the extension is installed, since without it the
operator does not exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from server.db.videos import VIDEO_COLUMNS, video_from_row
from server.search.model import (
    DURATION_BUCKETS,
    UPLOADED_WINDOWS,
    FacetCount,
    Facets,
    SearchFilters,
    SearchHit,
    SearchText,
    Suggestion,
)

# Highlights are delimited with control characters, which stored titles and
# descriptions cannot contain, so the page can build <mark> without parsing HTML.
_TITLE_HEADLINE = "StartSel=\x02, StopSel=\x03, HighlightAll=true"
_DESCRIPTION_HEADLINE = (
    'StartSel=\x02, StopSel=\x03, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "'
)
_DURATION = (
    "(CASE WHEN jsonb_typeof(v.metadata->'duration') = 'number'"
    " THEN (v.metadata->>'duration')::float8 END)"
)
# How much a title's trigram similarity adds to the full-text rank (0..1 each).
_SIMILARITY_WEIGHT = 0.5
_VIDEO_COLUMNS = ", ".join(f"v.{c.strip()}" for c in VIDEO_COLUMNS.split(","))


# Up to this many videos, a user's search reads all of their rows (through
# videos_user_created_idx) and filters them: a few milliseconds, whatever the
# words. Looking a word up in the GIN indexes costs what the word costs across
# *all* users' videos — a common prefix matches a quarter of a million rows —
# and the planner cannot tell the two apart (bench/search_bench.py).
SMALL_LIBRARY = 5000
# In a larger library, a search ranks (and counts facets over) only the newest
# this many matches: a common word in a big library matches tens of thousands
# of rows, and scoring and counting them all cost a second (bench/search_bench.py).
# Found by a backward scan of the user's (user_id, created_at) index that stops
# after this many matches; a rare word still goes through the word indexes.
NEWEST_MATCHES = 1000


def _source(small_library: bool, user_param: str) -> str:
    """`videos`, or — for a small library — the user's rows behind an OFFSET 0
    fence, so that the planner filters them instead of using the word indexes."""
    if not small_library:
        return "videos"
    return f"(SELECT * FROM videos WHERE user_id = {user_param} OFFSET 0)"  # noqa: S608 - "$n"


async def library_is_small(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """At most SMALL_LIBRARY videos (an index-only count that stops there)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM videos WHERE user_id = $1 LIMIT $2) mine",
        user_id,
        SMALL_LIBRARY + 1,
    )
    return int(count) <= SMALL_LIBRARY


class _Params:
    """Numbered bind parameters, in order."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _bucket_sql(low: float | None, high: float | None) -> str:
    parts = [f"{_DURATION} >= {low!r}" if low is not None else f"{_DURATION} IS NOT NULL"]
    if high is not None:
        parts.append(f"{_DURATION} < {high!r}")
    return " AND ".join(parts)


def _filter_predicates(p: _Params, filters: SearchFilters) -> dict[str, str]:
    """Each filter's condition by facet name ("true" when not filtered)."""
    found = dict.fromkeys(("kind", "status", "duration", "uploaded", "tags"), "true")
    if filters.kind is not None:
        found["kind"] = f"v.kind = {p.add(filters.kind)}"
    if filters.status is not None:
        found["status"] = f"v.status = {p.add(filters.status)}"
    if filters.duration is not None:
        found["duration"] = _bucket_sql(*DURATION_BUCKETS[filters.duration])
    if filters.uploaded is not None:
        days = p.add(UPLOADED_WINDOWS[filters.uploaded])
        found["uploaded"] = f"v.created_at >= now() - make_interval(days => {days})"
    if filters.tags:
        found["tags"] = f"v.tags @> {p.add(list(filters.tags))}::text[]"
    return found


def _matching(
    p: _Params, user: str, text: SearchText | None, tsquery: str, *, typo_tolerant: bool
) -> str:
    """The user's rows that the words match (all of them without words)."""
    clauses = [f"v.user_id = {user}"]
    if text is not None:
        match = f"v.search_vector @@ {tsquery}"
        if typo_tolerant:
            match = f"({match} OR {p.add(text.raw)} <% v.search_title)"
        clauses.append(match)
    return " AND ".join(clauses)


def _where(
    p: _Params,
    user: str,
    text: SearchText | None,
    tsquery: str,
    filters: SearchFilters,
    *,
    typo_tolerant: bool,
) -> str:
    clauses = [_matching(p, user, text, tsquery, typo_tolerant=typo_tolerant)]
    clauses += [c for c in _filter_predicates(p, filters).values() if c != "true"]
    return " AND ".join(clauses)


def _tsquery(p: _Params, config: str, text: SearchText | None) -> tuple[str, str]:
    """SQL of the query's tsquery and of the configuration.

    An expression, not a CTE: with constant arguments (custom plans, see
    `_custom_plans`) the planner folds it and estimates from the index's
    statistics how many rows a word matches — "holiday" in a quarter of all
    videos is best filtered within the user's rows, a rare word is best
    looked up in the GIN index. Behind a CTE it guessed 0.5% for every word.
    """
    if text is None:
        return "NULL::tsquery", "NULL::regconfig"
    cfg = f"{p.add(config)}::regconfig"
    return f"to_tsquery({cfg}, {p.add(text.tsquery)})", cfg


async def _custom_plans(conn: asyncpg.Connection) -> None:
    """Plan each search for its own words (in the caller's transaction).

    asyncpg prepares statements, and after five runs PostgreSQL may switch to
    one generic plan whose estimates ignore the words searched for.
    """
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def search_videos(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText | None,
    filters: SearchFilters,
    by_relevance: bool,
    after_date: tuple[datetime, uuid.UUID] | None,
    after_score: tuple[float, uuid.UUID] | None,
    limit: int,
    typo_tolerant: bool,
    small_library: bool = False,
    newest_matches: int | None = None,
) -> list[SearchHit]:
    """One page of hits, best first (`by_relevance`, needs `text`) or newest first;
    with `newest_matches`, relevance ranks only that many newest matches."""
    p = _Params()
    user = p.add(user_id)
    tsquery, cfg = _tsquery(p, config, text)
    where = _where(p, user, text, tsquery, filters, typo_tolerant=typo_tolerant)
    score = "NULL::float8"
    if text is not None:
        score = f"ts_rank(v.search_vector, {tsquery})::float8"
        if typo_tolerant:
            score += f" + {_SIMILARITY_WEIGHT} * word_similarity({p.add(text.raw)}, v.search_title)"
    if by_relevance:
        order = "score DESC, id DESC"
        after = (
            f"(score, id) < ({p.add(after_score[0])}::float8, {p.add(after_score[1])})"
            if after_score
            else "true"
        )
    else:
        order = "created_at DESC, id DESC"
        after = (
            f"(created_at, id) < ({p.add(after_date[0])}, {p.add(after_date[1])})"
            if after_date
            else "true"
        )
    newest = ""
    if by_relevance and newest_matches is not None:
        newest = f"ORDER BY v.created_at DESC, v.id DESC LIMIT {p.add(newest_matches)}"
    if text is not None:
        # Only for the rows of the page: ts_headline re-parses the text.
        headlines = (
            f"ts_headline({cfg}, frameflow_title_text(title, filename), {tsquery},"
            f" '{_TITLE_HEADLINE}') AS title_marked,"
            f" ts_headline({cfg}, description, {tsquery}, '{_DESCRIPTION_HEADLINE}')"
            " AS description_marked"
        )
    else:
        headlines = "NULL AS title_marked, NULL AS description_marked"
    sql = f"""
        WITH page AS (
            SELECT * FROM (
                SELECT {_VIDEO_COLUMNS}, {score} AS score FROM {_source(small_library, user)} v
                WHERE {where} {newest}
            ) matched
            WHERE {after}
            ORDER BY {order}
            LIMIT {p.add(limit)}
        )
        SELECT page.*, {headlines} FROM page ORDER BY {order}
    """  # noqa: S608 - constant fragments; values are bind parameters
    async with conn.transaction():
        await _custom_plans(conn)
        rows = await conn.fetch(sql, *p.values)
    return [
        SearchHit(
            video=video_from_row(r),
            score=r["score"],
            title_marked=r["title_marked"],
            description_marked=r["description_marked"],
        )
        for r in rows
    ]


async def matching_video_ids(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText | None,
    filters: SearchFilters,
    limit: int,
    typo_tolerant: bool,
    small_library: bool = False,
) -> list[uuid.UUID]:
    """Ids of what a search matches, oldest first, at most `limit` (a batch's videos)."""
    p = _Params()
    user = p.add(user_id)
    tsquery, _ = _tsquery(p, config, text)
    where = _where(p, user, text, tsquery, filters, typo_tolerant=typo_tolerant)
    sql = f"""SELECT v.id FROM {_source(small_library, user)} v WHERE {where}
              ORDER BY v.created_at, v.id LIMIT {p.add(limit)}"""  # noqa: S608 - as above
    async with conn.transaction():
        await _custom_plans(conn)
        rows = await conn.fetch(sql, *p.values)
    return [r["id"] for r in rows]


MAX_TAG_FACETS = 20


async def search_facets(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText | None,
    filters: SearchFilters,
    typo_tolerant: bool,
    small_library: bool = False,
    newest_matches: int | None = None,
) -> Facets:
    """Counts by kind, status, duration bucket, upload window and tag.

    Each single-choice facet (kind, status, duration, uploaded) counts what every
    filter but its own leaves, so it shows what choosing another value would
    find; tags, which filter all together, count what all filters leave (a
    tag's count is what adding it would leave). One scan of the word matches —
    with `newest_matches`, of only that many newest (`Facets.complete` says
    whether there were more).
    """
    p = _Params()
    user = p.add(user_id)
    tsquery, _ = _tsquery(p, config, text)
    matching = _matching(p, user, text, tsquery, typo_tolerant=typo_tolerant)
    predicates = _filter_predicates(p, filters)
    flags = ", ".join(f"({sql}) AS f_{name}" for name, sql in predicates.items())
    newest = ""
    if newest_matches is not None:
        newest = f"ORDER BY v.created_at DESC, v.id DESC LIMIT {p.add(newest_matches)}"

    def others(name: str | None) -> str:
        return " AND ".join(f"f_{n}" for n in predicates if n != name)

    durations = " UNION ALL ".join(
        f"SELECT '{name}' AS value, count(*) FILTER (WHERE {_bucket_sql(lo, hi)}) AS n"  # noqa: S608
        f" FROM hits v WHERE {others('duration')}"
        for name, (lo, hi) in DURATION_BUCKETS.items()
    )
    windows = " UNION ALL ".join(
        f"SELECT '{name}', count(*) FILTER (WHERE v.created_at >= now() - interval '{days} days')"  # noqa: S608
        f" FROM hits v WHERE {others('uploaded')}"
        for name, days in UPLOADED_WINDOWS.items()
    )
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT v.kind, v.status, v.created_at, v.tags, v.metadata, {flags}
            FROM {_source(small_library, user)} v WHERE {matching} {newest})
        SELECT 'total' AS facet, 'all' AS value, count(*) AS n FROM hits
        UNION ALL SELECT 'kind', kind, count(*) FROM hits
            WHERE {others("kind")} GROUP BY kind
        UNION ALL SELECT 'status', status, count(*) FROM hits
            WHERE {others("status")} GROUP BY status
        UNION ALL SELECT 'duration', value, n FROM ({durations}) d
        UNION ALL SELECT 'uploaded', value, n FROM ({windows}) w(value, n)
        UNION ALL (SELECT 'tags', t, count(*) FROM hits, unnest(hits.tags) t
                   WHERE {others(None)}
                   GROUP BY t ORDER BY count(*) DESC, t LIMIT {MAX_TAG_FACETS})
    """  # noqa: S608 - constant fragments; values are bind parameters
    found: dict[str, list[FacetCount]] = {
        "total": [],
        "kind": [],
        "status": [],
        "duration": [],
        "uploaded": [],
        "tags": [],
    }
    async with conn.transaction():
        await _custom_plans(conn)
        facet_rows = await conn.fetch(sql, *p.values)
    for r in facet_rows:
        found[r["facet"]].append(FacetCount(r["value"], r["n"]))
    for name in ("kind", "status"):
        found[name].sort(key=lambda f: (-f.count, f.value))
    total = found.pop("total")[0].count
    complete = newest_matches is None or total < newest_matches
    return Facets(**found, complete=complete)


async def suggest(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText,
    prefix: str,
    limit: int,
    typo_tolerant: bool,
    small_library: bool = False,
) -> list[Suggestion]:
    """Titles that match as typed (best first), then tags starting with `prefix`."""
    p = _Params()
    tsquery, _ = _tsquery(p, config, text)
    match = f"v.search_vector @@ {tsquery}"
    score = f"ts_rank(v.search_vector, {tsquery})"
    if typo_tolerant:
        raw = p.add(text.raw)
        match = f"({match} OR {raw} <% v.search_title)"
        score = f"{score} + {_SIMILARITY_WEIGHT} * word_similarity({raw}, v.search_title)"
    user, n = p.add(user_id), p.add(limit)
    like = p.add(_like_prefix(prefix))
    sql = f"""
        (SELECT 'title' AS kind, frameflow_title_text(v.title, v.filename) AS text,
                v.id AS video_id, NULL::bigint AS n
         FROM {_source(small_library, user)} v WHERE v.user_id = {user} AND {match}
         ORDER BY {score} DESC, v.created_at DESC LIMIT {n})
        UNION ALL
        (SELECT 'tag', t, NULL, count(*) FROM videos v, unnest(v.tags) t
         WHERE v.user_id = {user} AND t LIKE {like}
         GROUP BY t ORDER BY count(*) DESC, t LIMIT {n})
    """  # noqa: S608 - constant fragments; values are bind parameters
    async with conn.transaction():
        await _custom_plans(conn)
        rows = await conn.fetch(sql, *p.values)
    return [Suggestion(r["text"], r["kind"], r["video_id"], r["n"]) for r in rows]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# --- set-up ---------------------------------------------------------------------------


async def has_trigram_extension(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')")
    )


async def text_search_config_exists(conn: asyncpg.Connection, config: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1)", config)
    )


async def apply_text_search_config(conn: asyncpg.Connection, config: str) -> int:
    """Make `config` the default of new rows and, when it was not, rebuild the rows
    made with another one (this holds the table's lock until the caller commits);
    returns how many were rebuilt. The caller checked that `config` exists."""
    current = await conn.fetchval(
        """SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
           JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
           WHERE d.adrelid = 'videos'::regclass AND a.attname = 'search_config'"""
    )
    wanted = await conn.fetchval(
        "SELECT quote_literal($1::regconfig::text) || '::regconfig'", config
    )
    if current == wanted:
        return 0  # the usual start-up: one catalog read, no scan of the table
    # DDL takes no bind parameters; `wanted` was quoted by the server. The
    # caller's transaction makes the new default and the rebuilt rows one change.
    await conn.execute(f"ALTER TABLE videos ALTER COLUMN search_config SET DEFAULT {wanted}")
    status = await conn.execute(
        "UPDATE videos SET search_config = $1::regconfig WHERE search_config <> $1::regconfig",
        config,
    )
    return int(status.split()[-1])
