"""SQL of video search: the match, filters, keyset pages, facets, suggestions.

Queries are assembled from constant fragments; every value the user sent
travels as a bind parameter. `typo_tolerant` adds pg_trgm's `<%`
(word similarity against the title) as a second way to match — only ever
passed True when the extension is installed, since without it the
operator does not exist.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

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
# What ranking and facets read of each match: only these go through the sort by
# date (the page's rows are read again by id, 20 of them).
_MATCH_COLUMNS = (
    "v.id, v.kind, v.status, v.created_at, v.tags, v.metadata, v.search_vector, v.search_title"
)
# What every search reads of the rows its source (`_source`) finds: the above,
# the owner and, for suggestions, the title.
_SOURCE_COLUMNS = f"{_MATCH_COLUMNS}, v.user_id, v.title, v.filename"


# Up to this many videos, a user's search reads all of their rows (through
# videos_user_created_idx) and filters them: a few milliseconds, whatever the
# words (bench/search_bench.py).
SMALL_LIBRARY = 5000
# In a larger library, a search ranks (and counts facets over) only the newest
# this many matches: a common word in a big library matches tens of thousands
# of rows, and scoring and counting them all cost a second (bench/search_bench.py).
NEWEST_MATCHES = 1000
# How a larger library's newest matches are found, by the planner's estimate of
# how many videos of the user the words match (statistics of the owner-keyed
# index, sql/028): up to this many, through the owner word indexes (every match
# read, ~2-3 us each); more, by a backward scan of the user's (user_id,
# created_at) index that stops at NEWEST_MATCHES matches (~5-10 us per row
# read, and it reads NEWEST_MATCHES / (share of the library matching) rows).
# The two cost the same near sqrt(NEWEST_MATCHES * library * 3): ~12,000 for
# 50,000 videos. Both find the same rows; only the time differs.
WORD_INDEX_MATCHES = 10_000

# How a search finds its user's matching rows:
# "library": read all the user's rows and filter (a small library);
# "newest": scan the user's rows newest first, filtering (a common word);
# "words": look the words up in the owner-keyed indexes (anything rarer).
How = Literal["library", "newest", "words"]


def _source(how: How, user_param: str, words_source: str) -> str:
    """The rows a search filters: `videos` walked through the user's index, the
    user's rows behind an OFFSET 0 fence (so the planner filters them instead of
    looking words up), or the owner-keyed word matches behind a fence (so the
    planner does not AND them with every row of the user's index)."""
    if how == "library":
        return f"(SELECT {_SOURCE_COLUMNS} FROM videos v WHERE v.user_id = {user_param} OFFSET 0)"  # noqa: S608 - "$n"
    if how == "words":
        return words_source
    return "videos"


async def library_is_small(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """At most SMALL_LIBRARY videos (an index-only count that stops there)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM videos WHERE user_id = $1 LIMIT $2) mine",
        user_id,
        SMALL_LIBRARY + 1,
    )
    return int(count) <= SMALL_LIBRARY


async def newest_matches_how(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText,
    typo_tolerant: bool,
) -> How:
    """ "words" or "newest" for a large library's search, by the planner's estimate
    of the matches (see WORD_INDEX_MATCHES); a wrong guess costs time, not results."""
    p = _Params()
    user = p.add(user_id)
    tsquery, _ = _tsquery(p, config, text)
    # The lexemes alone: the trigram matches are mostly the same videos, and the
    # estimate of `%>` is a guess.
    words = _words_source(p, user, text, tsquery, typo_tolerant=False)
    sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {words} v"  # noqa: S608 - as above
    async with conn.transaction():
        await _custom_plans(conn)
        plan = await conn.fetchval(sql, *p.values)
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = float(plan[0]["Plan"]["Plan Rows"])
    return "words" if estimate <= WORD_INDEX_MATCHES else "newest"


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


def _words_source(
    p: _Params, user: str, text: SearchText, tsquery: str, *, typo_tolerant: bool
) -> str:
    """The rows the words match through the owner-keyed indexes (sql/028): the
    user's lexemes and (pg_trgm) the user's titles like the words, behind an
    OFFSET 0 fence so that the planner does not AND the lexemes' bitmap with
    every row of the user's (user_id, created_at) index.

    Two scans, not one OR: GIN rechecks trigram matches, and a recheck of the
    OR would rebuild the owned vector of every row sharing a page with one.
    The second leaves out what the first found (for the user's rows,
    `search_vector @@ q` is the first's condition, and cheap)."""
    owned = (
        f"SELECT {_SOURCE_COLUMNS} FROM videos v"  # noqa: S608
        " WHERE frameflow_owned_vector(v.user_id, v.search_vector)"
        f" @@ frameflow_owned_query({user}, {tsquery})"
    )
    if not typo_tolerant:
        return f"({owned} OFFSET 0)"
    # `title %> raw` is `raw <% title` as the trigram index states it.
    similar = (
        f"SELECT {_SOURCE_COLUMNS} FROM videos v WHERE v.user_id = {user}"  # noqa: S608
        f" AND v.search_title %> {p.add(text.raw)} AND NOT v.search_vector @@ {tsquery}"
    )
    return f"(SELECT * FROM ({owned} UNION ALL {similar}) v OFFSET 0)"  # noqa: S608


def _matching(
    p: _Params,
    user: str,
    text: SearchText | None,
    tsquery: str,
    *,
    typo_tolerant: bool,
    how: How = "newest",
) -> str:
    """The user's rows that the words match (all of them without words); with
    "words" the source (`_source`) has matched them already."""
    clauses = [f"v.user_id = {user}"]
    if text is not None and how != "words":
        match = f"v.search_vector @@ {tsquery}"
        if typo_tolerant:
            match = f"({match} OR {p.add(text.raw)} <% v.search_title)"
        clauses.append(match)
    return " AND ".join(clauses)


def _from_where(
    p: _Params,
    user: str,
    text: SearchText | None,
    tsquery: str,
    filters: SearchFilters | None,
    *,
    typo_tolerant: bool,
    how: How,
) -> tuple[str, str]:
    """The FROM source and the WHERE of the user's rows that the words (and
    `filters`, unless None) match."""
    words = ""
    if how == "words" and text is not None:
        words = _words_source(p, user, text, tsquery, typo_tolerant=typo_tolerant)
    elif how == "words":
        how = "newest"  # no words to look up: the user's rows
    clauses = [_matching(p, user, text, tsquery, typo_tolerant=typo_tolerant, how=how)]
    if filters is not None:
        clauses += [c for c in _filter_predicates(p, filters).values() if c != "true"]
    return _source(how, user, words), " AND ".join(clauses)


def _tsquery(p: _Params, config: str, text: SearchText | None) -> tuple[str, str]:
    """SQL of the query's tsquery and of the configuration.

    An expression, not a CTE: with constant arguments (custom plans, see
    `_custom_plans`) the planner folds it and estimates from the index's
    statistics how many rows a word matches. Behind a CTE it guessed 0.5% for
    every word.
    """
    if text is None:
        return "NULL::tsquery", "NULL::regconfig"
    cfg = f"{p.add(config)}::regconfig"
    return f"to_tsquery({cfg}, {p.add(text.tsquery)})", cfg


async def _custom_plans(conn: asyncpg.Connection, how: How = "words") -> None:
    """Plan each search for its own words (in the caller's transaction).

    asyncpg prepares statements, and after five runs PostgreSQL may switch to
    one generic plan whose estimates ignore the words searched for.

    "library" and "newest" read the user's rows through (user_id, created_at),
    newest first, which is their point: without bitmap scans the planner cannot
    instead fetch all of a large library's rows (through that index, or the
    (user_id, search_title) GIN) and sort them — what it did at 1M videos when it
    guessed a common word rare (bench/search_bench.py).
    """
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    if how != "words":
        await conn.execute("SET LOCAL enable_bitmapscan = off")


def _score(p: _Params, text: SearchText | None, tsquery: str, *, typo_tolerant: bool) -> str:
    if text is None:
        return "NULL::float8"
    score = f"ts_rank(v.search_vector, {tsquery})::float8"
    if typo_tolerant:
        score += f" + {_SIMILARITY_WEIGHT} * word_similarity({p.add(text.raw)}, v.search_title)"
    return score


def _order(by_relevance: bool) -> str:
    return "score DESC, id DESC" if by_relevance else "created_at DESC, id DESC"


def _headlines(text: SearchText | None, cfg: str, tsquery: str) -> str:
    """Highlights, only for the rows of the page: ts_headline re-parses the text."""
    if text is None:
        return "NULL AS title_marked, NULL AS description_marked"
    return (
        f"ts_headline({cfg}, frameflow_title_text(v.title, v.filename), {tsquery},"
        f" '{_TITLE_HEADLINE}') AS title_marked,"
        f" ts_headline({cfg}, v.description, {tsquery}, '{_DESCRIPTION_HEADLINE}')"
        " AS description_marked"
    )


def _newest(p: _Params, newest_matches: int | None) -> str:
    if newest_matches is None:
        return ""
    return f"ORDER BY v.created_at DESC, v.id DESC LIMIT {p.add(newest_matches)}"


def _hit(r: asyncpg.Record) -> SearchHit:
    return SearchHit(
        video=video_from_row(r),
        score=r["score"],
        title_marked=r["title_marked"],
        description_marked=r["description_marked"],
    )


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
    how: How = "newest",
    newest_matches: int | None = None,
) -> list[SearchHit]:
    """One page of hits, best first (`by_relevance`, needs `text`) or newest first;
    with `newest_matches`, relevance ranks only that many newest matches."""
    p = _Params()
    user = p.add(user_id)
    tsquery, cfg = _tsquery(p, config, text)
    source, where = _from_where(
        p, user, text, tsquery, filters, typo_tolerant=typo_tolerant, how=how
    )
    if by_relevance:
        after = (
            f"(score, id) < ({p.add(after_score[0])}::float8, {p.add(after_score[1])})"
            if after_score
            else "true"
        )
    else:
        after = (
            f"(created_at, id) < ({p.add(after_date[0])}, {p.add(after_date[1])})"
            if after_date
            else "true"
        )
    newest = _newest(p, newest_matches if by_relevance else None)
    score = _score(p, text, tsquery, typo_tolerant=typo_tolerant)
    order = _order(by_relevance)
    sql = f"""
        WITH page AS (
            SELECT * FROM (
                SELECT v.id, v.created_at, {score} AS score FROM (
                    SELECT {_MATCH_COLUMNS} FROM {source} v WHERE {where} {newest}
                ) v
            ) matched
            WHERE {after}
            ORDER BY {order}
            LIMIT {p.add(limit)}
        )
        SELECT {_VIDEO_COLUMNS}, page.score, {_headlines(text, cfg, tsquery)}
        FROM page JOIN videos v ON v.id = page.id ORDER BY page.{order.replace(", ", ", page.")}
    """  # noqa: S608 - constant fragments; values are bind parameters
    async with conn.transaction():
        await _custom_plans(conn, how)
        rows = await conn.fetch(sql, *p.values)
    return [_hit(r) for r in rows]


async def matching_video_ids(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText | None,
    filters: SearchFilters,
    limit: int,
    typo_tolerant: bool,
    how: How = "newest",
) -> list[uuid.UUID]:
    """Ids of what a search matches, oldest first, at most `limit` (a batch's videos)."""
    p = _Params()
    user = p.add(user_id)
    tsquery, _ = _tsquery(p, config, text)
    source, where = _from_where(
        p, user, text, tsquery, filters, typo_tolerant=typo_tolerant, how=how
    )
    sql = f"""SELECT v.id FROM {source} v WHERE {where}
              ORDER BY v.created_at, v.id LIMIT {p.add(limit)}"""  # noqa: S608 - as above
    async with conn.transaction():
        await _custom_plans(conn, how)
        rows = await conn.fetch(sql, *p.values)
    return [r["id"] for r in rows]


MAX_TAG_FACETS = 20


def _facets_sql(
    p: _Params,
    source: str,
    matching: str,
    filters: SearchFilters,
    newest: str,
    score: str,
) -> tuple[str, str]:
    """The `hits` CTE (the word matches, each with its score and whether each
    filter keeps it) and the query of the facet counts over it."""
    predicates = _filter_predicates(p, filters)
    flags = ", ".join(f"({sql}) AS f_{name}" for name, sql in predicates.items())

    def others(name: str | None) -> str:
        return " AND ".join(f"f_{n}" for n in predicates if n != name)

    # One pass counts the total, the duration buckets and the upload windows.
    aggregates = ["count(*) AS total"]
    rows = ["('total', 'all', a.total)"]
    for i, (name, (lo, hi)) in enumerate(DURATION_BUCKETS.items()):
        aggregates.append(
            f"count(*) FILTER (WHERE {_bucket_sql(lo, hi)} AND {others('duration')}) AS d{i}"
        )
        rows.append(f"('duration', '{name}', a.d{i})")
    for i, (name, days) in enumerate(UPLOADED_WINDOWS.items()):
        aggregates.append(
            f"count(*) FILTER (WHERE v.created_at >= now() - interval '{days} days'"
            f" AND {others('uploaded')}) AS u{i}"
        )
        rows.append(f"('uploaded', '{name}', a.u{i})")
    hits = f"""hits AS MATERIALIZED (
            SELECT v.id, v.kind, v.status, v.created_at, v.tags, v.metadata,
                   {score} AS score, {flags}
            FROM (SELECT {_MATCH_COLUMNS} FROM {source} v WHERE {matching} {newest}) v)"""  # noqa: S608
    counts = f"""
        SELECT c.facet, c.value, c.n FROM (SELECT {", ".join(aggregates)} FROM hits v) a,
            LATERAL (VALUES {", ".join(rows)}) c(facet, value, n)
        UNION ALL SELECT 'kind', kind, count(*) FROM hits
            WHERE {others("kind")} GROUP BY kind
        UNION ALL SELECT 'status', status, count(*) FROM hits
            WHERE {others("status")} GROUP BY status
        UNION ALL (SELECT 'tags', t, count(*) FROM hits, unnest(hits.tags) t
                   WHERE {others(None)}
                   GROUP BY t ORDER BY count(*) DESC, t LIMIT {MAX_TAG_FACETS})
    """  # noqa: S608 - constant fragments; values are bind parameters
    return hits, counts


def _facets_of(rows: list[tuple[str, str, int]], newest_matches: int | None) -> Facets:
    found: dict[str, list[FacetCount]] = {
        "total": [],
        "kind": [],
        "status": [],
        "duration": [],
        "uploaded": [],
        "tags": [],
    }
    for facet, value, n in rows:
        found[facet].append(FacetCount(value, n))
    for name in ("kind", "status"):
        found[name].sort(key=lambda f: (-f.count, f.value))
    total = found.pop("total")[0].count
    complete = newest_matches is None or total < newest_matches
    return Facets(**found, complete=complete)


async def search_facets(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText | None,
    filters: SearchFilters,
    typo_tolerant: bool,
    how: How = "newest",
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
    source, matching = _from_where(
        p, user, text, tsquery, None, typo_tolerant=typo_tolerant, how=how
    )
    hits, counts = _facets_sql(
        p, source, matching, filters, _newest(p, newest_matches), "NULL::float8"
    )
    async with conn.transaction():
        await _custom_plans(conn, how)
        rows = await conn.fetch(f"WITH {hits} {counts}", *p.values)
    return _facets_of([(r["facet"], r["value"], r["n"]) for r in rows], newest_matches)


async def search_first_page(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText,
    by_relevance: bool,
    limit: int,
    typo_tolerant: bool,
    how: How = "newest",
    newest_matches: int | None = None,
) -> tuple[list[SearchHit], Facets]:
    """The first page and the facets of a search with words and no filters, from
    one scan: without filters the page's candidates (the matches, or the newest
    `newest_matches` of them) are the facets' `hits`, so the statement finds and
    scores them once, then takes the page and the counts from them."""
    p = _Params()
    user = p.add(user_id)
    tsquery, cfg = _tsquery(p, config, text)
    source, matching = _from_where(
        p, user, text, tsquery, None, typo_tolerant=typo_tolerant, how=how
    )
    score = _score(p, text, tsquery, typo_tolerant=typo_tolerant)
    hits, counts = _facets_sql(
        p, source, matching, SearchFilters(), _newest(p, newest_matches), score
    )
    order = _order(by_relevance)
    sql = f"""
        WITH {hits},
        page AS (SELECT id, created_at, score FROM hits ORDER BY {order} LIMIT {p.add(limit)}),
        counts AS ({counts})
        SELECT (SELECT array_agg(jsonb_build_array(facet, value, n)) FROM counts) AS facets,
               found.*
        FROM (SELECT 1) one LEFT JOIN (
            SELECT {_VIDEO_COLUMNS}, page.score, {_headlines(text, cfg, tsquery)}
            FROM page JOIN videos v ON v.id = page.id
        ) found ON true
        ORDER BY {order}
    """  # noqa: S608 - constant fragments; values are bind parameters
    async with conn.transaction():
        await _custom_plans(conn, how)
        rows = await conn.fetch(sql, *p.values)
    facets = _facets_of([tuple(f) for f in rows[0]["facets"]], newest_matches)
    return [_hit(r) for r in rows if r["id"] is not None], facets


async def suggest(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    config: str,
    text: SearchText,
    prefix: str,
    limit: int,
    typo_tolerant: bool,
    how: How = "newest",
) -> list[Suggestion]:
    """Titles that match as typed (best first), then tags starting with `prefix`."""
    p = _Params()
    user = p.add(user_id)
    tsquery, _ = _tsquery(p, config, text)
    source, where = _from_where(p, user, text, tsquery, None, typo_tolerant=typo_tolerant, how=how)
    score = _score(p, text, tsquery, typo_tolerant=typo_tolerant)
    n = p.add(limit)
    like = p.add(_like_prefix(prefix))
    sql = f"""
        (SELECT 'title' AS kind, frameflow_title_text(v.title, v.filename) AS text,
                v.id AS video_id, NULL::bigint AS n
         FROM {source} v WHERE {where}
         ORDER BY {score} DESC, v.created_at DESC LIMIT {n})
        UNION ALL
        (SELECT 'tag', t, NULL, count(*) FROM videos v, unnest(v.tags) t
         WHERE v.user_id = {user} AND t LIKE {like}
         GROUP BY t ORDER BY count(*) DESC, t LIMIT {n})
    """  # noqa: S608 - constant fragments; values are bind parameters
    async with conn.transaction():
        await _custom_plans(conn, how)
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
