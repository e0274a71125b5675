-- Account recovery: email verification and password reset.
--
-- `email_verified_at` is NULL until the owner follows a verification link;
-- accounts that existed before this migration are taken as verified (they
-- had no way to verify, and must not lose what they could do yesterday).
-- Changing the email sets it back to NULL.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
UPDATE users SET email_verified_at = created_at;

-- Single-use tokens mailed to an address. Only a SHA-256 of the token is
-- kept: the token itself is an HMAC of the row id under the server secret,
-- remade by the outbox when it writes the mail (see server/recovery/tokens.py),
-- so neither this table nor the outbox row holds anything usable.
CREATE TABLE account_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash  bytea NOT NULL UNIQUE,
    -- The address the token was sent to: a verification is void once the
    -- account's email has changed again.
    email       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);

-- Account mails go through the same outbox as job mails; they have no job.
CREATE INDEX notification_log_user_event_idx
    ON notification_log (user_id, event, created_at DESC);
