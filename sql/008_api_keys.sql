-- Long-lived, scoped API keys. Only a SHA-256 of the secret is kept: the
-- secret has 256 random bits, so a fast hash is as good as a slow one and
-- keeps the per-request lookup a single index probe. Deleting the account
-- deletes its keys (ON DELETE CASCADE), so they stop working with it.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- The first characters of the secret, shown in lists to tell keys apart.
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);
