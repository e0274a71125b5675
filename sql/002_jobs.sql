-- The durable job queue, its outputs and its processing history.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video_id         uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    operation        text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    priority         integer NOT NULL DEFAULT 0,
    progress         real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    error            text,
    worker_id        text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL))
);
-- The claim query: highest priority first, then FIFO, among queued jobs.
CREATE INDEX jobs_queue_idx ON jobs (priority DESC, created_at, id) WHERE status = 'queued';
-- The lease reaper: running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_video_idx ON jobs (video_id);

-- Outputs become visible only with the job's final status (same transaction).
CREATE TABLE job_outputs (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    storage_key  text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    content_type text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);

-- One row per attempt: who ran it, when, and how it ended.
CREATE TABLE job_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    integer NOT NULL,
    worker_id  text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    outcome    text CHECK (outcome IN ('succeeded', 'failed', 'canceled', 'lease_expired', 'retry')),
    error      text,
    UNIQUE (job_id, attempt)
);
