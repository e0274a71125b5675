-- Share links: a public, revocable URL (/s/{token}) for one video.
-- Every request under the link reads this row, so a revoke or an expiry
-- takes effect on the next request, media segments included.

CREATE TABLE shares (
    id             uuid PRIMARY KEY,
    token          text NOT NULL UNIQUE,
    video_id       uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What the link shows: a subset of {video, hls, thumbnail}.
    exposes        text[] NOT NULL,
    allow_download boolean NOT NULL DEFAULT false,
    password_hash  text,  -- bcrypt; NULL: no password
    expires_at     timestamptz,  -- NULL: until revoked
    revoked_at     timestamptz,
    view_count     bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shares_video_idx ON shares (video_id, created_at DESC);
