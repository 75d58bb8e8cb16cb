"""The migrated schema matches the models, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from kith.db.base import Base
from kith.runtime.resources import Resources


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs: list[Any] = compare_metadata(context, Base.metadata)
    return diffs


async def test_migrations_match_models(resources: Resources) -> None:
    async with resources.engine.connect() as connection:
        diffs = await connection.run_sync(_differences)
    assert diffs == []


@pytest.mark.sqlite_only
async def test_sqlite_pragmas(resources: Resources) -> None:
    from sqlalchemy import text

    async with resources.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 15000
