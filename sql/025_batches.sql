-- Batches: many jobs queued by one request (POST /api/v1/jobs/batch), all or none.
-- A batch's progress is counted from its jobs; deleting a video takes its jobs
-- with it, so a batch only ever counts the jobs that still exist.

CREATE TABLE batches (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The operations as asked for (name and params), for showing the batch again.
    operations  jsonb NOT NULL,
    preset      text,  -- the preset's name when the batch used one
    job_count   integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_user_created_idx ON batches (user_id, created_at DESC);

ALTER TABLE jobs ADD COLUMN batch_id uuid REFERENCES batches (id) ON DELETE SET NULL;
CREATE INDEX jobs_batch_idx ON jobs (batch_id, status) WHERE batch_id IS NOT NULL;
