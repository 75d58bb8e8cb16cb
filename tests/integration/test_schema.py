"""The migrated schema matches the models, on every backend."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from kith.core.config import Settings
from kith.db.base import Base
from kith.db.engine import create_engine
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
    async with resources.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 15000


async def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    # The database holds password hashes and e-mail addresses: owner only, 0600, whatever
    # the umask says, for the file SQLite writes first (the WAL) as much as the database.
    database = tmp_path / "private" / "kith.db"
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{database}", _env_file=None))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE notes (body TEXT)"))
            await connection.execute(text("INSERT INTO notes VALUES ('secret')"))
        files = [database, database.with_name("kith.db-wal"), database.with_name("kith.db-shm")]
        assert all(path.exists() for path in files)
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    finally:
        await engine.dispose()
