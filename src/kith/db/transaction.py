"""A unit of work: one transaction, committed on success, jobs dispatched after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import DomainError
from kith.core.jobs import pending_jobs
from kith.core.realtime import pending_events
from kith.db.engine import WRITE_INTENT

if TYPE_CHECKING:
    from kith.core.resources import Resources


@asynccontextmanager
async def unit_of_work(resources: Resources, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """Run a block in one transaction.

    Commits when the block ends normally, rolls back when it raises (except a
    `DomainError` that `keeps_changes`), and hands live events and jobs queued in the
    block on only after the commit. `write=True` takes SQLite's write lock up front.
    """
    async with resources.session_factory() as session:
        if write:
            await session.connection(execution_options={WRITE_INTENT: True})
        try:
            yield session
            await session.commit()
        except DomainError as error:
            if error.keeps_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        jobs = pending_jobs(session)
        events = pending_events(session)
    await resources.realtime.publish_all(events)
    await resources.jobs.dispatch(jobs)
