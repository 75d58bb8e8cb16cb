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


@pytest.mark.sqlite_only
async def test_sqlite_writers_take_turns_in_the_order_they_came(resources: Resources) -> None:
    # Writers queue in the process before they touch SQLite: each starts once the one
    # before it committed, in arrival order, and none polls the database's lock meanwhile.
    order: list[str] = []

    async def writer(name: str) -> None:
        async with unit_of_work(resources) as session:
            order.append(f"{name} in")
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    tasks = []
    for name in "abcde":
        tasks.append(asyncio.create_task(writer(name)))
        await asyncio.sleep(0)  # each reaches the gate before the next starts
    await asyncio.gather(*tasks)
    assert order == [f"{name} {step}" for name in "abcde" for step in ("in", "out")]


@pytest.mark.sqlite_only
async def test_a_writer_inside_a_writer_fails_at_once_instead_of_waiting_for_itself(
    resources: Resources,
) -> None:
    async with unit_of_work(resources):
        with pytest.raises(RuntimeError, match="wait for itself"):
            async with unit_of_work(resources):
                pass
    # The gate is free again, and reads never queue for it.
    async with unit_of_work(resources), unit_of_work(resources, write=False) as reader:
        assert await reader.scalar(text("SELECT 1")) == 1


@pytest.mark.postgres_only
async def test_postgres_writers_do_not_queue_in_the_process(resources: Resources) -> None:
    assert resources.write_gate is None
    async with unit_of_work(resources), unit_of_work(resources) as second:
        assert await second.scalar(text("SELECT 1")) == 1
