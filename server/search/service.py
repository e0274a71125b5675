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
from server.db.search import How
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

    async def _how(self, conn: asyncpg.Connection, user_id: uuid.UUID, query: SearchQuery) -> How:
        """How this search finds its rows (see `search_db.How`)."""
        if query.text is None:
            return "newest"
        if await search_db.library_is_small(conn, user_id):
            return "library"
        return await search_db.newest_matches_how(
            conn, user_id, config=self._config, text=query.text, typo_tolerant=self.typo_tolerance
        )

    async def search(self, user_id: uuid.UUID, query: SearchQuery) -> SearchPage:
        # Relevance needs words to rank by; filters alone list newest first.
        sort = query.sort if query.text is not None else "date"
        async with self._pool.acquire() as conn:
            how = await self._how(conn, user_id, query)
            # A large library ranks and counts the newest matches only (see NEWEST_MATCHES).
            newest = (
                search_db.NEWEST_MATCHES if how != "library" and query.text is not None else None
            )
            facets = None
            # Without filters the page and the facets share their matches (one
            # scan) — by date too while the page is within the newest matches.
            shared = sort == "relevance" or newest is None or query.limit < newest
            if query.first_page and query.text is not None and query.filters.empty and shared:
                hits, facets = await search_db.search_first_page(
                    conn,
                    user_id,
                    config=self._config,
                    text=query.text,
                    by_relevance=sort == "relevance",
                    limit=query.limit + 1,
                    typo_tolerant=self.typo_tolerance,
                    how=how,
                    newest_matches=newest,
                )
            else:
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
                    how=how,
                    newest_matches=newest,
                )
            if query.first_page and facets is None:
                facets = await search_db.search_facets(
                    conn,
                    user_id,
                    config=self._config,
                    text=query.text,
                    filters=query.filters,
                    typo_tolerant=self.typo_tolerance,
                    how=how,
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
                # Every match, not the newest: through the owner word indexes.
                how="library" if small else "words",
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
                # Every match is ranked: through the owner word indexes.
                how="library" if small else "words",
            )
