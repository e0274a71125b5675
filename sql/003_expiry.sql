-- Expiry of videos, and the record that makes deleting their bytes crash-safe.

-- Existing rows get the default TTL counted from now (not from their upload):
-- nothing disappears at the first sweep after an upgrade. New rows are
-- always inserted with an explicit value (the upload's TTL).
ALTER TABLE videos
    ADD COLUMN expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days';
-- The sweep's scan: expired videos, oldest expiry first.
CREATE INDEX videos_expires_idx ON videos (expires_at);

-- Storage prefixes whose videos row is gone but whose objects may not be.
-- Inserted in the same transaction that deletes the row, removed once
-- delete_prefix succeeded: a crash (or a storage error) in between leaves
-- this row, and the next sweep deletes the prefix again. So bytes can be left
-- unreferenced for a while, but a row never points at missing bytes.
CREATE TABLE pending_deletions (
    prefix     text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
