-- Word indexes with the owner first, so that a search reads its user's entries only.
--
-- Every search is one user's (GET /api/v1/videos?q=, suggest, a batch's query).
-- With the GIN indexes of 012, a word's lookup walks the posting lists of every
-- user's videos and then intersects them with the user's rows: the cost of a
-- common word across a million videos, whoever searches (bench/search_bench.py).
--
-- A multi-column GIN (btree_gin's (user_id, search_vector)) does not fix that:
-- GIN keys each column separately, and a prefix query ("hol:*") collects every
-- user's matching lexemes into a bitmap before the AND. So the owner goes into
-- the key itself: each lexeme of `search_vector` becomes "<owner key>:<lexeme>"
-- (`frameflow_owned_vector`), and a query's lexemes get the same prefix
-- (`frameflow_owned_query`); "ab12cd34:hol":* then scans that user's range of
-- the entry tree and nothing else. The owner key is the first 8 hex digits of
-- the user id: two users sharing one only read each other's entries, which the
-- query's `user_id = $1` drops (it is never the only condition).

CREATE FUNCTION frameflow_owner_key(owner uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN left(owner::text, 8) || ':';

CREATE FUNCTION frameflow_owned_vector(owner uuid, vector tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN array_to_tsvector(ARRAY(
    SELECT frameflow_owner_key(owner) || lexeme FROM unnest(vector)
));

-- Lexemes are quoted in a tsquery's text ('hol':* & 'beach'); search queries
-- are built from word characters only (server/search/text.py), so a lexeme
-- holds no quote and the rewrite cannot change the query's operators.
CREATE FUNCTION frameflow_owned_query(owner uuid, query tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN regexp_replace(
    query::text, '''([^'']*)''', '''' || frameflow_owner_key(owner) || '\1''', 'g'
)::tsquery;

CREATE INDEX videos_owner_search_idx ON videos
    USING gin (frameflow_owned_vector(user_id, search_vector));

-- Every search names its user, so the index over all users' lexemes is no
-- longer used; dropping it keeps writes and disk where they were.
DROP INDEX IF EXISTS videos_search_idx;

-- Typo tolerance (pg_trgm's `<%` on the title): with btree_gin, one GIN over
-- (user_id, search_title) — trigram lookups are exact keys, not prefixes, so
-- GIN's AND of the two columns skips through the user's entries. Without
-- btree_gin (or without pg_trgm) nothing changes: the global trigram index of
-- 012 stays, ANDed with the user's index as before.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS btree_gin;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'btree_gin is not available (%): typo matching keeps the global trigram index', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
       AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gin') THEN
        EXECUTE 'CREATE INDEX videos_owner_title_trgm_idx ON videos '
                'USING gin (user_id, search_title gin_trgm_ops)';
        EXECUTE 'DROP INDEX IF EXISTS videos_search_title_trgm_idx';
    END IF;
END
$$;

-- The planner's estimate of a user's matches (which decides how a large
-- library is searched, server/db/search.py) comes from the statistics of the
-- new index's expression: its most common "owner:lexeme" pairs. At the default
-- target (100: 30,000 sampled rows) a pair needs ~0.16% of all rows to be
-- counted, and with fewer than 100 counted pairs PostgreSQL ignores them and
-- guesses 2% of the table for every prefix query — at 1M videos that is 20,000
-- matches, so every large-library search took the newest-first scan, ~0.5 s
-- for a rare word (bench/search_bench.py). At 1000 (300,000 sampled rows,
-- 10,000 pairs) a user's pairs with ~0.02% of the rows count.
ALTER INDEX videos_owner_search_idx ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE videos;
