-- Video generation: a prompt (and optionally a reference image) turned into a
-- video by a provider. The work runs as a `jobs` row of operation `generate`
-- (the job engine's claim, lease, retry and cancel), which has no source
-- video: `jobs.video_id` becomes optional for it.
--
-- Status (server.generations.state is its only writer):
--   queued → submitted (the provider accepted it; `remote_task_id` kept, so a
--   restarted worker polls instead of paying again) → running → succeeded,
--   and failed / canceled from any unfinished status. The credits held at
--   submission (`hold_id`) are captured or released in the transaction that
--   ends the generation.

ALTER TABLE jobs ALTER COLUMN video_id DROP NOT NULL;
ALTER TABLE jobs ADD CONSTRAINT jobs_source_check
    CHECK (video_id IS NOT NULL OR operation = 'generate');

CREATE TABLE generations (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id           uuid REFERENCES jobs (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'submitted', 'running', 'succeeded', 'failed',
                                       'canceled')),
    progress         real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
    provider         text NOT NULL,
    model            text NOT NULL,
    prompt           text NOT NULL,
    negative_prompt  text,
    image_id         uuid REFERENCES videos (id) ON DELETE SET NULL,
    duration_seconds integer NOT NULL CHECK (duration_seconds > 0),
    resolution       text NOT NULL,
    aspect_ratio     text NOT NULL,
    seed             bigint,
    process          text[] NOT NULL DEFAULT '{}',
    estimate_credits bigint NOT NULL CHECK (estimate_credits >= 0),
    hold_id          uuid,
    credits_charged  bigint,
    remote_task_id   text,
    error_code       text,
    error            text,
    -- Deferred: the generation succeeds in its video's transaction, just before
    -- the video row is inserted.
    video_id         uuid REFERENCES videos (id) ON DELETE SET NULL
                     DEFERRABLE INITIALLY DEFERRED,
    idempotency_key  text,
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX generations_user_created_idx ON generations (user_id, created_at DESC, id DESC);
CREATE INDEX generations_job_idx ON generations (job_id);
