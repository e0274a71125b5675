"""`SearchService`: finding a user's videos by what they are called and tagged.

At start-up (`prepare`) it applies the text-search configuration setting
(rebuilding vectors made with another one) and learns whether pg_trgm is
installed. Typo tolerance is on only when the setting asks for it *and* the
extension is there; otherwise search is full-text matching alone, with the
same results shape (`typo_tolerance: false` says which).

A search is one page of hits (keyset: by (score, id) for relevance, by
(created_at, id) for date) plus, on the first page, facet counts of all
that matches.
"""

from __future__ import annotations

import uuid

import asyncpg

from config.settings import Settings, SettingsError, env_name
from server.db import search as search_db
from server.logs import get_logger
from server.search.model import SearchPage, SearchQuery, Suggestion
from server.search.text import search_text

log = get_logger("frameflow.search")


class SearchService:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._config = settings.search_config
        self._wants_typos = settings.search_typo_tolerance
        self._has_trigrams = False

    @property
    def typo_tolerance(self) -> bool:
        return self._wants_typos and self._has_trigrams

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            if not await search_db.text_search_config_exists(conn, self._config):
                raise SettingsError(
                    f"{env_name('search_config')}: PostgreSQL has no text-search "
                    f"configuration {self._config!r}"
                )
            self._has_trigrams = await search_db.has_trigram_extension(conn)
            async with conn.transaction():
                rebuilt = await search_db.apply_text_search_config(conn, self._config)
        if rebuilt:
            log.info("search_vectors_rebuilt", config=self._config, videos=rebuilt)
        if self._wants_typos and not self._has_trigrams:
            log.warning("search_without_typo_tolerance", reason="pg_trgm is not installed")

    async def search(self, user_id: uuid.UUID, query: SearchQuery) -> SearchPage:
        # Relevance needs words to rank by; filters alone list newest first.
        sort = query.sort if query.text is not None else "date"
        async with self._pool.acquire() as conn:
            # A small library is read whole; a large one goes through the word indexes.
            small = query.text is not None and await search_db.library_is_small(conn, user_id)
            # A large library ranks and counts the newest matches only (see NEWEST_MATCHES).
            newest = search_db.NEWEST_MATCHES if query.text is not None and not small else None
            hits = await search_db.search_videos(
                conn,
                user_id,
                config=self._config,
                text=query.text,
                filters=query.filters,
                by_relevance=sort == "relevance",
                after_date=query.after_date,
                after_score=query.after_score,
                limit=query.limit + 1,  # one more tells whether there is a next page
                typo_tolerant=self.typo_tolerance,
                small_library=small,
                newest_matches=newest,
            )
            facets = None
            if query.first_page:
                facets = await search_db.search_facets(
                    conn,
                    user_id,
                    config=self._config,
                    text=query.text,
                    filters=query.filters,
                    typo_tolerant=self.typo_tolerance,
                    small_library=small,
                    newest_matches=newest,
                )
        return SearchPage(
            hits=hits[: query.limit],
            has_more=len(hits) > query.limit,
            sort=sort,
            facets=facets,
            typo_tolerance=self.typo_tolerance,
        )

    async def matching_ids(
        self, user_id: uuid.UUID, query: SearchQuery, limit: int
    ) -> list[uuid.UUID]:
        """Every video the query's words and filters match (at most `limit`), oldest first."""
        async with self._pool.acquire() as conn:
            small = query.text is not None and await search_db.library_is_small(conn, user_id)
            return await search_db.matching_video_ids(
                conn,
                user_id,
                config=self._config,
                text=query.text,
                filters=query.filters,
                limit=limit,
                typo_tolerant=self.typo_tolerance,
                small_library=small,
            )

    async def suggest(self, user_id: uuid.UUID, typed: str, limit: int) -> list[Suggestion]:
        """Titles and tags for a search box while someone types."""
        text = search_text(typed)
        if text is None:
            return []
        async with self._pool.acquire() as conn:
            small = await search_db.library_is_small(conn, user_id)
            return await search_db.suggest(
                conn,
                user_id,
                config=self._config,
                text=text,
                prefix=typed.strip().lower(),
                limit=limit,
                typo_tolerant=self.typo_tolerance,
                small_library=small,
            )
