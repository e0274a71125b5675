-- Resumable (tus 1.0) uploads: one row per upload, from creation until it is
-- a video (or expired, terminated, refused). Only server.tus.state changes
-- `status`; the quota hold is server.quota.ledger's.
CREATE TABLE tus_uploads (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The video it becomes: chosen up front so that the object's key is known
    -- from the start and a completion repeated after a crash finds it again.
    video_id       uuid NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'uploading' CHECK (
        status IN ('uploading', 'completing', 'completed', 'failed', 'terminated', 'expired')
    ),
    upload_length  bigint CHECK (upload_length >= 0),  -- NULL while deferred
    upload_offset  bigint NOT NULL DEFAULT 0 CHECK (upload_offset >= 0),
    -- Bytes held in users.used_bytes for this upload (the length, or while it
    -- is deferred what the PATCHes so far announced).
    reserved_bytes bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
    filename       text NOT NULL,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- Upload-Metadata, decoded
    process        text[] NOT NULL DEFAULT '{}',
    ttl_seconds    integer,  -- the video's, from metadata; NULL: the default
    storage        jsonb NOT NULL,  -- where the bytes are (server.storage.base.AppendState)
    error          jsonb,  -- why a failed upload was refused: {status, code, message}
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    -- When its temporary bytes (temp file, multipart upload, tail objects) were
    -- removed; NULL on a finished row means the sweep must try again.
    cleaned_at     timestamptz,
    CHECK (upload_length IS NULL OR upload_offset <= upload_length)
);
-- The per-user cap on unfinished uploads, and the sweep's scan for expired ones.
CREATE INDEX tus_uploads_user_open_idx ON tus_uploads (user_id)
    WHERE status IN ('uploading', 'completing');
CREATE INDEX tus_uploads_expires_idx ON tus_uploads (expires_at);
