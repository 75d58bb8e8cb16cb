"""Pooled PostgreSQL connections: pinged before use only after sitting idle.

A ping on every checkout costs asyncpg three round trips; a connection that died while
idle (the database restarted) must still be replaced before a request gets it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import PG_HOST, PG_PORT, PG_USER


async def _backend_pid(resources: Resources) -> int:
    async with unit_of_work(resources, write=False) as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


pytestmark = pytest.mark.postgres_only


@pytest.fixture
def postgres_resources(resources: Resources) -> Resources:
    return resources


async def test_a_connection_that_died_while_idle_is_replaced(postgres_resources: Resources) -> None:
    resources = postgres_resources
    pid = await _backend_pid(resources)
    await _terminate(pid)
    await asyncio.sleep(resources.settings.database_ping_after_idle_seconds + 0.2)

    # The next request gets a live connection, not an error.
    assert await _backend_pid(resources) != pid


async def test_only_an_idle_connection_is_pinged(
    postgres_resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = postgres_resources
    pings: list[object] = []
    original = AsyncAdapt_asyncpg_connection.ping

    def counting_ping(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        original(self)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting_ping)
    pid = await _backend_pid(resources)
    assert await _backend_pid(resources) == pid
    assert pings == []  # used a moment ago: trusted

    await asyncio.sleep(resources.settings.database_ping_after_idle_seconds + 0.2)
    assert await _backend_pid(resources) == pid
    assert len(pings) == 1
