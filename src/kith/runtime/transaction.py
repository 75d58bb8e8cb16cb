"""A unit of work: one transaction, committed on success, jobs dispatched after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import DomainError
from kith.core.jobs import pending_jobs
from kith.core.realtime import pending_events
from kith.db.engine import WRITE_INTENT
from kith.runtime.events import bind

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.db")

_ROLLBACK_KEY = "kith_on_rollback"


def on_rollback(session: AsyncSession, undo: Callable[[], Awaitable[None]]) -> None:
    """Run `undo` if `session`'s unit of work rolls back instead of committing.

    For work done outside the database that only makes sense if the transaction
    commits, such as a file stored for a row this transaction inserts.
    """
    session.info.setdefault(_ROLLBACK_KEY, []).append(undo)


async def _rollback(session: AsyncSession) -> None:
    try:
        await session.rollback()
    finally:
        await _undo_after_rollback(session)


async def _undo_after_rollback(session: AsyncSession) -> None:
    undos: list[Callable[[], Awaitable[None]]] = session.info.pop(_ROLLBACK_KEY, [])
    for undo in undos:
        try:
            await undo()
        except Exception as exc:  # The rollback's own error is the one to report.
            log.warning("rollback_undo_failed", error=type(exc).__name__)


@asynccontextmanager
async def unit_of_work(resources: Resources, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """Run a block in one transaction.

    Commits when the block ends normally, rolls back when it raises (except a
    `DomainError` that `keeps_changes`) and then runs the block's `on_rollback` undos,
    and hands live events and jobs queued in the block on only after the commit.
    `write=True` takes SQLite's write lock up front. On PostgreSQL a read-only unit
    (`write=False`) runs without BEGIN and COMMIT: at READ COMMITTED every statement
    takes its own snapshot even inside a transaction, so one would add two round trips
    and no consistency.
    """
    async with resources.session_factory() as session:
        bind(session, resources.subscribers)
        if write:
            await session.connection(execution_options={WRITE_INTENT: True})
        elif resources.engine.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            yield session
            await session.commit()
        except DomainError as error:
            if error.keeps_changes:
                await session.commit()
                session.info.pop(_ROLLBACK_KEY, None)
            else:
                await _rollback(session)
            raise
        except BaseException:
            await _rollback(session)
            raise
        session.info.pop(_ROLLBACK_KEY, None)
        jobs = pending_jobs(session)
        events = pending_events(session)
    await resources.realtime.publish_all(events)
    await resources.jobs.dispatch(jobs)
