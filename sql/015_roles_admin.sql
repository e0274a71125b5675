-- Roles (issue 10 §3): a read-only `viewer` role, disabled accounts, and a
-- heartbeat row per job runner so the admin summary can count live workers.

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'user', 'viewer'));

-- Set while the account is disabled: its credentials are refused everywhere.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
-- The admin list pages newest first and filters by role.
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);

-- One row per job runner, upserted by its heartbeat (one write per interval,
-- whatever the number of jobs); deleted when the runner stops cleanly.
CREATE TABLE workers (
    worker_id   text PRIMARY KEY,
    concurrency integer NOT NULL,
    running     integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
