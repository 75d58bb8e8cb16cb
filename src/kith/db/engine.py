"""Engine and session factory; the per-request transaction lives in `session.py`."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from kith.core.config import Settings
from kith.db.sqlite_driver import one_trip_dbapi

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Execution option that marks a connection whose transaction will write (SQLite only).
WRITE_INTENT = "kith_write_intent"
# Execution option that marks a read-only unit of work's connection: no BEGIN (SQLite only).
READ_ONLY = "kith_read_only"


def pool_capacity(settings: Settings) -> int:
    """How many PostgreSQL connections a process may hold (kith.http.health reads it too)."""
    return 2 * settings.database_pool_size


def create_engine(settings: Settings) -> AsyncEngine:
    """Build the async engine for the configured database."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(settings)
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        # Up to twice KITH_DATABASE_POOL_SIZE connections, each kept once opened: a burst
        # connection that SQLAlchemy's overflow closed on return had to be opened again
        # under any sustained load above the pool size, paying asyncpg's TLS attempt,
        # authentication and its prepared statements each time (docs/benchmarks.md).
        pool_size=pool_capacity(settings),
        max_overflow=0,
        # Past this wait the pool raises TimeoutError: a 503 (kith.core.outages), not a hang.
        pool_timeout=settings.database_pool_timeout_seconds,
        # asyncpg's own default is 60 s: an unreachable host would hold a request that long.
        connect_args={"timeout": settings.database_connect_timeout_seconds},
    )
    _ping_idle_connections(engine, settings.database_ping_after_idle_seconds)
    return engine


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it has been idle for a while.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and on asyncpg its ping is
    three round trips (BEGIN, a query, ROLLBACK): more than a typical request's own
    queries. A connection that was in use a moment ago is almost surely alive; if it is
    not, its request fails and SQLAlchemy invalidates the whole pool. One that sat idle
    (through a database restart, say) is checked, and replaced if the ping fails.
    """
    checked_in = "kith_checked_in_at"

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[checked_in] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        since = record.info.get(checked_in)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or used a moment ago
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise DisconnectionError() from error


def _create_sqlite_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        _create_private(Path(url.database))
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # aiosqlite in one trip to its thread per statement (kith.db.sqlite_driver).
        module=one_trip_dbapi(),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the driver, so we decide how BEGIN looks.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A transaction that will write takes the write lock up front: a deferred one
        # that reads first could not upgrade later and would fail with "database is
        # locked" instead of waiting for the busy timeout.
        options = conn.get_execution_options()
        if options.get(WRITE_INTENT):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        # A read-only unit of work sends no BEGIN: each of its statements is a transaction
        # of its own, with its own snapshot, as on PostgreSQL (kith.runtime.transaction).

    return engine


def _create_private(database: Path) -> None:
    """Create the database file readable by its owner only (0600), unless it exists.

    SQLite gives its `-wal` and `-shm` files the database file's permissions, so they are
    private too. An empty file is an empty database to SQLite.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
