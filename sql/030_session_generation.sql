-- Ending sessions also ends their access tokens (JWTs live up to 15 minutes).
--
-- Access tokens carry the account's `session_generation` at issue (`gen`);
-- a password reset, a password change and a disable add one, and the
-- per-request account check (the same one-row read as role and disabled)
-- refuses a token of an older generation. A password change keeps the
-- caller's session: its id is `session_kept`, whose tokens stay valid.
ALTER TABLE users
    ADD COLUMN session_generation integer NOT NULL DEFAULT 0,
    ADD COLUMN session_kept uuid;
