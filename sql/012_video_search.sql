-- Full-text search over titles, tags and descriptions (GET /api/v1/videos?q=).
--
-- `search_vector` is generated from the row, weighted title (A) above tags (B)
-- above description (C), and indexed with GIN. Each row carries the text-search
-- configuration it was built with (`search_config`): the setting
-- FRAMEFLOW_SEARCH_CONFIG is applied at start-up (the column's default, and
-- rows built with another configuration are rebuilt), so queries always use
-- the configuration the vectors were made with.

-- array_to_string is only STABLE (it could call any type's output function);
-- on text[] it cannot change, and a generated column needs IMMUTABLE.
CREATE FUNCTION frameflow_tags_text(tags text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN array_to_string(tags, ' ');

-- A file name's dots and underscores separate words ("beach_day.mp4"); the
-- default parser would otherwise read it as one file-name token.
CREATE FUNCTION frameflow_title_text(title text, filename text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(title, regexp_replace(filename, '[._]+', ' ', 'g'));

ALTER TABLE videos
    ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english',
    ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(search_config, frameflow_title_text(title, filename)), 'A')
        || setweight(to_tsvector(search_config, frameflow_tags_text(tags)), 'B')
        || setweight(to_tsvector(search_config, description), 'C')
    ) STORED,
    -- What typo tolerance compares the query with (pg_trgm, when installed).
    ADD COLUMN search_title text GENERATED ALWAYS AS (
        lower(frameflow_title_text(title, filename))
    ) STORED;

CREATE INDEX videos_search_idx ON videos USING gin (search_vector);

-- Typo tolerance needs pg_trgm, a contrib extension that some builds lack
-- (the embedded pgserver one does). Without it the migration still succeeds
-- and search falls back to full-text matching alone (the service checks).
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): search works without typo tolerance', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX videos_search_title_trgm_idx ON videos '
                'USING gin (search_title gin_trgm_ops)';
    END IF;
END
$$;
