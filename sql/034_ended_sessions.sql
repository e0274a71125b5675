-- A session ended on its own (a logout, a refresh token replayed) ends its
-- access tokens too, not only its refresh tokens.
--
-- Access tokens name their session (`sid`) and live up to
-- FRAMEFLOW_ACCESS_TOKEN_TTL_SECONDS. A row here says: refuse the access
-- tokens of this session until `until`, when the last of them has expired
-- anyway. The per-request account check (users.access_of) reads a user's
-- live rows in the same query as the role and the session generation, which
-- ends sessions in bulk (030); the sweep deletes rows past `until`.
CREATE TABLE ended_sessions (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id uuid NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (user_id, session_id)
);

CREATE INDEX ended_sessions_until_idx ON ended_sessions (until);
