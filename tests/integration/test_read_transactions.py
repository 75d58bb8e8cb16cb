"""Read-only units of work run without BEGIN and COMMIT, on PostgreSQL and on SQLite.

At READ COMMITTED each statement takes its own snapshot even inside a transaction, so
a transaction around a read adds two round trips and no consistency. Writes keep theirs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import OutgoingEmail
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


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


@pytest.mark.sqlite_only
async def test_reads_run_outside_a_transaction_on_sqlite(resources: Resources) -> None:
    """No BEGIN for a read-only unit: each statement is a transaction of its own, as on
    PostgreSQL; a writing unit's transaction spans its statements."""
    for write in (False, True):
        async with unit_of_work(resources, write=write) as session:
            await session.execute(text("SELECT count(*) FROM users"))
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None
            assert raw.driver_connection.in_transaction is write


@pytest.mark.postgres_only
async def test_writes_keep_one_transaction(resources: Resources) -> None:
    async with unit_of_work(resources) as session:
        first, second = await _statement_starts(session)
    assert second == first


async def test_objects_left_by_a_read_only_unit_are_still_committed(resources: Resources) -> None:
    """A read-only unit skips the ORM's commit only when nothing is left to flush: an
    object a block adds (which autoflush, off, never sent) is still stored."""
    email = f"left-{uuid.uuid4().hex[:8]}@example.com"
    async with unit_of_work(resources, write=False) as session:
        session.add(
            OutgoingEmail(
                recipient=email, subject="s", message="m", attempts=1, created_at=_NOW, next_attempt_at=_NOW
            )
        )
    async with unit_of_work(resources, write=False) as session:
        stored = await session.scalar(select(OutgoingEmail.subject).where(OutgoingEmail.recipient == email))
    assert stored == "s"


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
