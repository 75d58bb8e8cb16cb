"""SQLite in one trip to aiosqlite's thread per statement (kith.db.sqlite_driver)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from kith.db.models import OutgoingEmail
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

pytestmark = pytest.mark.sqlite_only

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made in aiosqlite's thread, by name, from now on."""
    made: list[str] = []
    original: Any = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


def _email(recipient: str) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "subject": "s",
        "message": "m",
        "attempts": 1,
        "created_at": _NOW,
        "next_attempt_at": _NOW,
    }


async def test_a_read_is_one_trip_for_its_statement_and_none_for_its_end(
    resources: Resources, trips: list[str]
) -> None:
    async with unit_of_work(resources, write=False) as session:
        await session.connection()
        trips.clear()
        assert await session.scalar(text("SELECT 40 + 2")) == 42
        assert len(trips) == 1  # SQLAlchemy's own adapter: cursor, execute, fetch, close
        trips.clear()
    assert trips == []  # no BEGIN was sent, so no COMMIT or ROLLBACK either


async def test_writes_commit_roll_back_and_report_what_they_did(resources: Resources) -> None:
    kept, dropped = f"kept-{uuid.uuid4().hex[:8]}@example.com", f"dropped-{uuid.uuid4().hex[:8]}@example.com"
    async with unit_of_work(resources) as session:
        connection = await session.connection()
        result = await connection.execute(insert(OutgoingEmail), [_email(kept), _email(f"2-{kept}")])
        assert result.rowcount == 2
    with pytest.raises(RuntimeError):
        async with unit_of_work(resources) as session:
            await session.execute(insert(OutgoingEmail).values(**_email(dropped)))
            raise RuntimeError("the request failed")
    async with unit_of_work(resources, write=False) as session:
        stored = await session.scalars(
            select(OutgoingEmail.recipient).where(OutgoingEmail.recipient.in_([kept, f"2-{kept}", dropped]))
        )
        assert sorted(stored) == sorted([kept, f"2-{kept}"])
        # A statement's rows come back whole, in order.
        counted = await session.scalar(select(func.count()).select_from(OutgoingEmail))
        assert counted is not None and counted >= 2


async def test_a_failing_statement_is_sqlalchemys_error_and_ends_nothing_else(resources: Resources) -> None:
    with pytest.raises(IntegrityError):
        async with unit_of_work(resources) as session:
            await session.execute(text("INSERT INTO users (id) VALUES (NULL)"))
    async with unit_of_work(resources, write=False) as session:
        assert await session.scalar(text("SELECT 1")) == 1
