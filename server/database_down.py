"""What "the database is down" looks like to code above the pool: the error
middleware answers these with 503 `database_unavailable` instead of a 500, and
without importing `server.db` (handlers and middlewares run no SQL)."""

from __future__ import annotations

import asyncpg


class DatabaseUnreachable(ConnectionError):
    """A new connection to PostgreSQL could not be opened (down, restarting, starting up)."""


# What a request sees while the database is down or restarting: no new connection,
# a pooled one cut mid-query, or the server shutting sessions down. Rendered as 503
# `database_unavailable` by the error middleware; the pool replaces closed
# connections by itself on the next acquire.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    DatabaseUnreachable,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
)
