"""Search at scale: 1,000,000 videos across many users, typical queries, EXPLAIN.

    python bench/search_bench.py [--videos 1000000] [--users 1000] [--repeat 200]

Seeds a fresh database (on BENCH_DATABASE_URL / TEST_DATABASE_URL, which
needs pg_trgm for the typo rows; `--database-url` otherwise) with the real
migrations, then `COPY`s the rows in binary chunks — the table's secondary
indexes are dropped for the load and rebuilt after it, as a bulk load
should, with the migration's own definitions. Titles, tags and descriptions
are drawn from a Zipf-distributed vocabulary (a few common words, a long
tail of rare ones), upload dates spread over two years, durations from
seconds to an hour. One user is "heavy" (`--heavy` videos, 50,000 by
default); the rest share the remainder.

The queries go through `SearchService` itself (the SQL and Python the API
runs; the HTTP layer adds the same few milliseconds as any other request):
each row is `--repeat` calls with a random user and a random word of the
kind named, timed end to end (a page of 20 plus, on first pages, the facet
counts). Then `EXPLAIN (ANALYZE, BUFFERS)` of a typical and a heavy-user
search, and the indexes each plan uses. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench._common import (
    Table,
    _admin,
    _with_database,
    bench_database,
    default_database_server,
    log,
    write_results,
)
from config.settings import Settings
from server.db import videos as videos_db
from server.db.pool import open_database
from server.search.model import SearchFilters, SearchQuery
from server.search.service import SearchService
from server.search.text import search_text

CHUNK = 50_000
REAL_WORDS = [
    "summer",
    "winter",
    "holiday",
    "beach",
    "mountain",
    "river",
    "city",
    "night",
    "concert",
    "wedding",
    "birthday",
    "party",
    "family",
    "dog",
    "cat",
    "garden",
    "kitchen",
    "football",
    "match",
    "training",
    "lecture",
    "meeting",
    "interview",
    "demo",
    "trailer",
    "sunset",
    "sunrise",
    "harbour",
    "island",
    "forest",
    "lake",
    "snow",
    "rain",
    "storm",
    "road",
    "trip",
    "flight",
    "train",
    "market",
    "festival",
    "dance",
    "music",
    "guitar",
    "piano",
    "school",
    "graduation",
    "baby",
    "kids",
    "friends",
    "drone",
    "timelapse",
    "tutorial",
    "review",
    "unboxing",
    "recipe",
    "cooking",
    "running",
    "cycling",
    "swimming",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "ze",
    "ba",
    "de",
    "fi",
    "go",
    "hu",
    "ja",
    "ke",
    "li",
    "mo",
    "nu",
    "pa",
    "re",
    "si",
    "to",
    "vu",
]
TAGS = [f"tag{i}" for i in range(300)] + REAL_WORDS[:40]
INDEXES_TO_REBUILD = (
    "videos_owner_search_idx",
    "videos_owner_title_trgm_idx",
    "videos_search_title_trgm_idx",
    "videos_tags_idx",
    "videos_user_created_idx",
)


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words = list(REAL_WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Corpus:
    def __init__(self, rng: random.Random, words: int = 20_000) -> None:
        self.rng = rng
        self.words = vocabulary(words, rng)
        # Zipf: the word of rank r is drawn with weight 1/r.
        self.cum = []
        total = 0.0
        for rank in range(1, len(self.words) + 1):
            total += 1.0 / rank
            self.cum.append(total)

    def pick(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=k)


def rows(
    corpus: Corpus, user_ids: list[uuid.UUID], count: int, now: datetime
) -> list[tuple[Any, ...]]:
    rng = corpus.rng
    out = []
    for user_id in user_ids[:count] if len(user_ids) == count else rng.choices(user_ids, k=count):
        video_id = uuid.uuid4()
        title = " ".join(corpus.pick(rng.randint(2, 6))).capitalize()
        description = " ".join(corpus.pick(rng.randint(0, 30)))
        tags = sorted(set(rng.sample(TAGS, rng.randint(0, 4))))
        duration = round(rng.lognormvariate(4.5, 1.3), 2)
        created = now - timedelta(seconds=rng.randint(0, 2 * 365 * 86400))
        out.append(
            (
                video_id,
                user_id,
                f"{title[:40].lower().replace(' ', '_')}.mp4",
                f"users/{user_id}/videos/{video_id}/source",
                rng.randint(10**5, 10**9),
                # Distinct, as the library's unique (user_id, sha256) of images needs.
                f"{rng.getrandbits(256):064x}",
                "video/mp4",
                "video" if rng.random() < 0.9 else "image",
                "ready",
                json.dumps({"duration": duration, "width": 1280, "height": 720}),
                created,
                created + timedelta(days=3650),
                title,
                description,
                tags,
            )
        )
    return out


COLUMNS = [
    "id",
    "user_id",
    "filename",
    "storage_key",
    "size",
    "sha256",
    "content_type",
    "kind",
    "status",
    "metadata",
    "created_at",
    "expires_at",
    "title",
    "description",
    "tags",
]


async def seed(url: str, args: argparse.Namespace, corpus: Corpus) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    timings: dict[str, float] = {}
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        users = [uuid.uuid4() for _ in range(args.users)]
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"u{i}@bench.example", "x", 10**15) for i, u in enumerate(users)],
            columns=["id", "email", "password_hash", "quota_bytes"],
        )
        definitions = [
            r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'videos'"
                " AND indexname = ANY($1::text[])",
                list(INDEXES_TO_REBUILD),
            )
        ]
        # Statistics targets set on index columns (028's owner index) go with the index.
        targets = await conn.fetch(
            "SELECT c.relname, a.attnum, a.attstattarget FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relname = ANY($1::text[]) AND a.attstattarget > 0",
            list(INDEXES_TO_REBUILD),
        )
        for name in INDEXES_TO_REBUILD:
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
        now = datetime.now(UTC)
        heavy, others = users[0], users[1:]
        started = time.perf_counter()
        left = args.videos
        heavy_left = min(args.heavy, args.videos)
        generated = 0.0
        while left > 0:
            n = min(CHUNK, left)
            from_heavy = min(heavy_left, n)
            t0 = time.perf_counter()
            batch = rows(corpus, [heavy] * from_heavy, from_heavy, now) if from_heavy else []
            batch += rows(corpus, others, n - from_heavy, now) if n > from_heavy else []
            generated += time.perf_counter() - t0
            await conn.copy_records_to_table("videos", records=batch, columns=COLUMNS)
            heavy_left -= from_heavy
            left -= n
            log(f"  copied {args.videos - left:,} / {args.videos:,}")
        timings["copy_s"] = time.perf_counter() - started - generated
        timings["generate_s"] = generated
        started = time.perf_counter()
        for definition in definitions:
            t0 = time.perf_counter()
            await conn.execute(definition)
            log(f"  {definition[:80]}… {time.perf_counter() - t0:.1f} s")
        for t in targets:
            await conn.execute(
                f"ALTER INDEX {t['relname']} ALTER COLUMN {t['attnum']}"
                f" SET STATISTICS {t['attstattarget']}"
            )
        timings["indexes_s"] = time.perf_counter() - started
        await conn.execute("ANALYZE videos")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('videos'))")
        return {"timings": timings, "users": users, "heavy": heavy, "table_size": size}
    finally:
        await conn.close()


async def seeded_before(pool: asyncpg.Pool) -> dict[str, Any]:
    """What `seed` returns, read from a database it filled earlier (--reuse)."""
    async with pool.acquire() as conn:
        owners = await conn.fetch(
            "SELECT user_id FROM videos GROUP BY user_id ORDER BY count(*) DESC, user_id"
        )
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('videos'))")
    users = [r["user_id"] for r in owners]
    return {"timings": {}, "users": users, "heavy": users[0], "table_size": size}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[94], q[98]


def misspell(word: str, rng: random.Random) -> str:
    i = rng.randint(1, len(word) - 2)
    return word[:i] + word[i + 1 :]


class Capture:
    """Stands in for a connection: records the SQL a db function would run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.calls.append((sql, args))
        # What search_first_page reads of an empty answer: the facets, no page.
        return [{"facets": [("total", "all", 0)], "id": None}]

    async def execute(self, sql: str, *args: Any) -> str:
        return ""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


async def explain(
    pool: asyncpg.Pool, service: SearchService, query: SearchQuery, user: uuid.UUID
) -> tuple[str, list[str]]:
    from server.db import search as search_db

    capture = Capture()
    assert query.text is not None
    async with pool.acquire() as conn:
        # As SearchService does: a small library is read whole; a large one ranks
        # its newest matches, found by the way the planner's estimate picks.
        how: search_db.How = "library"
        if not await search_db.library_is_small(conn, user):
            how = await search_db.newest_matches_how(
                conn, user, config="english", text=query.text, typo_tolerant=service.typo_tolerance
            )
    await search_db.search_first_page(
        capture,
        user,
        config="english",
        text=query.text,
        by_relevance=True,
        limit=21,
        typo_tolerant=service.typo_tolerance,
        how=how,
        newest_matches=None if how == "library" else search_db.NEWEST_MATCHES,
    )
    sql, params = capture.calls[0]
    async with pool.acquire() as conn, conn.transaction():
        await search_db._custom_plans(conn, how)  # the planner settings the search runs with
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
    text = f"({how})\n" + "\n".join(r[0] for r in plan)
    return text, sorted(
        set(re.findall(r"(?:Index|Bitmap Index) Scan (?:Backward )?(?:using|on) (\w+)", text))
    )


async def measure(
    name: str,
    repeat: int,
    call: Callable[[], Awaitable[Any]],
    table: Table,
    results: dict[str, Any],
) -> None:
    await call()  # warm the connection and the plan
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    p50, p95, p99 = percentiles(samples)
    table.add(name, f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}")
    results[name] = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "n": repeat}


async def run(args: argparse.Namespace, url: str) -> None:
    rng = random.Random(args.seed)
    corpus = Corpus(rng)
    settings = Settings(database_url=url, database_pool_size=4)
    async with open_database(settings, url) as pool:
        if args.reuse:
            seeded = await seeded_before(pool)
        else:
            log(f"seeding {args.videos:,} videos for {args.users:,} users …")
            seeded = await seed(url, args, corpus)
        service = SearchService(pool=pool, settings=settings)
        await service.prepare()
        users, heavy = seeded["users"][1:], seeded["heavy"]
        common = corpus.words[:50]
        middling = corpus.words[200:2000]
        long_words = [w for w in middling if len(w) >= 6]

        def q(word: str, **filters: Any) -> SearchQuery:
            return SearchQuery(
                text=search_text(word), filters=SearchFilters(**filters), sort="relevance"
            )

        async def search(query: SearchQuery, user: uuid.UUID | None = None) -> Any:
            return await service.search(user or rng.choice(users), query)

        async def newest() -> Any:
            async with pool.acquire() as conn:
                return await videos_db.list_videos(conn, rng.choice(users), limit=21)

        table = Table(["query", "p50 ms", "p95 ms", "p99 ms"])
        results: dict[str, Any] = {}
        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("list newest (no q)", newest),
            ("q: common word + facets", lambda: search(q(rng.choice(common)))),
            ("q: rarer word + facets", lambda: search(q(rng.choice(middling)))),
            (
                "q: two words, prefix",
                lambda: search(q(f"{rng.choice(common)} {rng.choice(middling)[:4]}")),
            ),
            ("q: misspelt word", lambda: search(q(misspell(rng.choice(long_words), rng)))),
            (
                "q + tag + duration filters",
                lambda: search(q(rng.choice(common), tags=(rng.choice(TAGS),), duration="medium")),
            ),
            (
                "filters only (date order)",
                lambda: search(SearchQuery(text=None, filters=SearchFilters(uploaded="month"))),
            ),
            (
                "suggest (3 letters)",
                lambda: service.suggest(rng.choice(users), rng.choice(middling)[:3], 8),
            ),
            (
                f"heavy user ({args.heavy:,} videos): common word",
                lambda: search(q(rng.choice(common)), heavy),
            ),
            ("heavy user: rarer word", lambda: search(q(rng.choice(middling)), heavy)),
        ]
        for name, call in cases:
            await measure(name, args.repeat, call, table, results)
        print()
        print(table.render())
        plans = {}
        for label, query, user in (
            ("typical user, rarer word", q(middling[0]), users[0]),
            ("heavy user, rarer word", q(middling[0]), heavy),
            ("heavy user, common word", q(common[0]), heavy),
        ):
            plan, indexes = await explain(pool, service, query, user)
            plans[label] = {"plan": plan, "indexes": indexes}
            print(f"\nEXPLAIN ANALYZE — {label} (indexes: {', '.join(indexes)})\n{plan}")
        path = write_results(
            "search",
            {
                "videos": args.videos,
                "users": args.users,
                "heavy": args.heavy,
                "table_size": seeded["table_size"],
                "seed_timings": seeded["timings"],
                "typo_tolerance": service.typo_tolerance,
                "queries": results,
                "plans": plans,
            },
        )
        seed_s = {k: round(v, 1) for k, v in seeded["timings"].items()}
        print(f"\nseed: {json.dumps(seed_s)}, table {seeded['table_size']}")
        print(f"results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--heavy", type=int, default=50_000, help="videos of the one heavy user")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--keep", default="", help="seed into this new database and keep it (for EXPLAIN by hand)"
    )
    parser.add_argument(
        "--reuse", default="", help="measure again on a database seeded with --keep (no seeding)"
    )
    args = parser.parse_args()
    server = args.database_url or default_database_server()
    if not server:
        raise SystemExit("set BENCH_DATABASE_URL or TEST_DATABASE_URL (a PostgreSQL with pg_trgm)")
    if args.reuse:
        asyncio.run(run(args, _with_database(server, args.reuse)))
        return
    if args.keep:
        asyncio.run(_admin(server, f'CREATE DATABASE "{args.keep}"'))
        asyncio.run(run(args, _with_database(server, args.keep)))
        return
    # Created and dropped outside the event loop (bench_database runs its own).
    with bench_database(server) as url:
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
