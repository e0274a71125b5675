-- Direct uploads: a one-time upload URL made by a user (or an API key) for
-- someone without credentials (an end user's browser). Only
-- server.directuploads.state changes `status`; "expired" is not stored: a
-- waiting or uploading row past `expires_at` reads as expired.
CREATE TABLE direct_uploads (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the URL's secret: the secret itself is shown once, at creation.
    token_sha256  bytea NOT NULL UNIQUE,
    status        text NOT NULL DEFAULT 'waiting' CHECK (
        status IN ('waiting', 'uploading', 'done', 'canceled')
    ),
    max_bytes     bigint NOT NULL CHECK (max_bytes > 0),
    allowed_types text[] NOT NULL DEFAULT '{}',  -- empty: any supported type
    process       text[] NOT NULL DEFAULT '{}',
    ttl_seconds   integer,  -- the video's; NULL: the default
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the creator's, shown back
    cors_origin   text,
    video_id      uuid,  -- set with status 'done'
    -- The tus upload sending the file, when the URL is used with tus.
    tus_upload_id uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX direct_uploads_user_idx ON direct_uploads (user_id, created_at DESC);
