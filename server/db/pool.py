"""The asyncpg pool: the configured PostgreSQL, or an embedded one.

With no database URL configured, PostgreSQL is started from the `pgserver`
wheel under ``<data dir>/postgres`` — nothing to install; `embedded.py` says
when it stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from config.settings import Settings
from server import data_dirs
from server.database_down import DatabaseUnreachable
from server.db.embedded import start_embedded_postgres
from server.db.migrate import migrate
from server.logs import get_logger

log = get_logger("frameflow.db")


def with_password(url: str, password: str) -> str:
    """`url` with `password` as its password, percent-encoded, so that `@`, `/`, `#`,
    `:` or `%` in it cannot be read as URL syntax (asyncpg and libpq decode it)."""
    if not password:
        return url
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


async def resolve_database_url(settings: Settings) -> str:
    """The URL to connect with: the configured one (with `database_password` put
    in), else that of the embedded server, started if needed."""
    if settings.database_url:
        return with_password(settings.database_url, settings.database_password)
    uri = await asyncio.to_thread(start_embedded_postgres, settings.data_dir)
    log.info("embedded_postgres_started", pgdata=str(data_dirs.postgres_dir(settings.data_dir)))
    return uri


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come and go as Python objects.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Seconds to open one connection: a database that does not answer fails requests
# fast (503) instead of holding them for asyncpg's default minute.
CONNECT_TIMEOUT = 5.0


async def _connect(*args: Any, **kw: Any) -> asyncpg.Connection:
    """asyncpg.connect, with "cannot connect" raised as one type that callers can
    tell from other connection errors (storage, webhooks) — a bare OSError (refused,
    or no socket file at all) says nothing about where it came from."""
    try:
        return await asyncpg.connect(*args, **kw)
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
        raise DatabaseUnreachable(str(exc) or type(exc).__name__) from exc
    except asyncpg.PostgresConnectionError as exc:
        raise DatabaseUnreachable(str(exc) or type(exc).__name__) from exc


async def create_pool(dsn: str, *, max_size: int = 10, **kw: Any) -> asyncpg.Pool:
    kw.setdefault("timeout", CONNECT_TIMEOUT)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        command_timeout=60,
        connect=_connect,
        **kw,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def open_database(settings: Settings, dsn: str | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A migrated pool, closed on exit (`dsn` when already resolved)."""
    dsn = dsn or await resolve_database_url(settings)
    pool = await create_pool(dsn, max_size=settings.database_pool_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()


async def ping(pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
    """A round trip to the database (readiness checks); raises when it cannot."""
    async with pool.acquire(timeout=acquire_timeout) as conn:
        await conn.fetchval("SELECT 1")
