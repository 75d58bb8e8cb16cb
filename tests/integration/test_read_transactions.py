"""Read-only units of work on PostgreSQL run without BEGIN and COMMIT.

At READ COMMITTED each statement takes its own snapshot even inside a transaction, so
a transaction around a read adds two round trips and no consistency. Writes keep theirs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import text
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
async def test_reads_run_outside_a_transaction_on_postgres(resources: Resources, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    async with unit_of_work(resources, write=False) as session:
        first, second = await _statement_starts(session)
    assert second > first


async def test_writes_keep_one_transaction(resources: Resources) -> None:
    async with unit_of_work(resources) as session:
        if resources.engine.dialect.name != "postgresql":
            # SQLite has no now(); its write lock taken up front proves the transaction.
            assert await session.scalar(text("SELECT 1")) == 1
            return
        first, second = await _statement_starts(session)
    assert second == first
