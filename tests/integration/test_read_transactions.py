"""Read-only units of work on PostgreSQL run without BEGIN and COMMIT.

At READ COMMITTED each statement takes its own snapshot even inside a transaction, so
a transaction around a read adds two round trips and no consistency. Writes keep theirs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


async def _statement_starts(session: AsyncSession) -> tuple[datetime, datetime]:
    # now() is the start of the current transaction: equal twice inside one transaction.
    first = await session.scalar(text("SELECT now()"))
    await asyncio.sleep(0.02)
    second = await session.scalar(text("SELECT now()"))
    assert first is not None and second is not None
    return first, second


@pytest.mark.postgres_only
async def test_reads_run_outside_a_transaction_on_postgres(resources: Resources) -> None:
    async with unit_of_work(resources, write=False) as session:
        first, second = await _statement_starts(session)
    assert second > first


@pytest.mark.postgres_only
async def test_writes_keep_one_transaction(resources: Resources) -> None:
    async with unit_of_work(resources) as session:
        first, second = await _statement_starts(session)
    assert second == first


def _try_to_write(database: str) -> str | None:
    """Another connection's attempt to start writing, without waiting: the error, if any."""
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        other.close()
    return None


@pytest.mark.sqlite_only
async def test_writes_hold_the_sqlite_write_lock_from_the_start(resources: Resources) -> None:
    # SQLite has no now(): a write unit of work begins with BEGIN IMMEDIATE, so it holds
    # the write lock before its first statement, until it ends; a read takes none.
    database = make_url(resources.settings.database_url).database
    assert database is not None
    async with unit_of_work(resources) as session:
        assert await session.scalar(text("SELECT 1")) == 1
        assert _try_to_write(database) == "database is locked"
    assert _try_to_write(database) is None
    async with unit_of_work(resources, write=False) as session:
        assert await session.scalar(text("SELECT 1")) == 1
        assert _try_to_write(database) is None
