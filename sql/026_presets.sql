-- Presets: a user's named, saved operation sets (POST /api/v1/presets), used at
-- upload (?preset=name) and in a batch ("preset": "name") instead of listing the
-- operations each time.

CREATE TABLE presets (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    -- [{"operation": name, "params": {...}}], checked against the operations' schemas.
    operations  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
