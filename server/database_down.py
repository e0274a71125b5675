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
    # Seen in the restart drill: a query sent just as the server cuts the session
    # leaves asyncpg's protocol mid-operation; the pool discards that connection.
    asyncpg.InternalClientError,
)

# Also caught by the middleware, then checked with `database_down`: asyncpg raises
# InterfaceError ("the underlying connection is closed") when a transaction ends on
# a connection the server cut, with the real cause as its context.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_DOWN, asyncpg.InterfaceError)


def database_down(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised from or while handling, says the
    database is unreachable (rather than a bug in how a connection was used)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncpg.ProtocolViolationError):
            return False  # class 08 too, but a malformed message of ours: a real 500
        if isinstance(seen, DATABASE_DOWN):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
