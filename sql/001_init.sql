-- Accounts, refresh-token families and uploaded videos.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    quota_bytes   bigint NOT NULL CHECK (quota_bytes >= 0),
    used_bytes    bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique regardless of case: Alice@x and alice@x are one account.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- One row per issued refresh token. Rotation marks the presented token used
-- and issues a new one in the same family; presenting a used token again
-- (a replay) revokes the whole family.
CREATE TABLE refresh_tokens (
    jti        uuid PRIMARY KEY,
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE videos (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename     text NOT NULL,
    storage_key  text NOT NULL UNIQUE,
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       text NOT NULL,
    content_type text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('video', 'image')),
    status       text NOT NULL DEFAULT 'ready',
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Newest-first keyset pagination per user.
CREATE INDEX videos_user_created_idx ON videos (user_id, created_at DESC, id DESC);
