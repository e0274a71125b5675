-- A title, a description and tags per video, edited with PATCH /api/v1/videos/{id}.
-- A NULL title means "the file name": renaming nothing keeps the two in step,
-- and clearing a title gives the file name back.

ALTER TABLE videos
    ADD COLUMN title       text,
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN tags        text[] NOT NULL DEFAULT '{}';

-- Tags are filtered with `tags @> ARRAY[...]` (and counted as facets).
CREATE INDEX videos_tags_idx ON videos USING gin (tags);
