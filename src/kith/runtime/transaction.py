"""A unit of work: one transaction, committed on success, jobs dispatched after commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import DomainError
from kith.core.jobs import pending_jobs
from kith.core.realtime import pending_events
from kith.db.engine import READ_ONLY, SQLITE_BUSY_TIMEOUT_MS, WRITE_INTENT
from kith.runtime.events import bind
from kith.runtime.session_cache import changed_users

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.db")

_ROLLBACK_KEY = "kith_on_rollback"
_COMMIT_KEY = "kith_after_commit"
_RESOURCES_KEY = "kith_resources"


def on_rollback(session: AsyncSession, undo: Callable[[], Awaitable[None]]) -> None:
    """Run `undo` if `session`'s unit of work rolls back instead of committing.

    For work done outside the database that only makes sense if the transaction
    commits, such as a file stored for a row this transaction inserts.
    """
    session.info.setdefault(_ROLLBACK_KEY, []).append(undo)


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` once `session`'s unit of work has committed, before it returns: for
    work outside the database that must follow the commit at once and never precede it,
    such as deleting the files of rows this transaction deleted, or pushing a new post to
    the Redis timelines. Actions run after SQLite's write gate is released, so a slow one
    holds up no other writer. A failing action is logged; the commit stands."""
    session.info.setdefault(_COMMIT_KEY, []).append(action)


def resources_of(session: AsyncSession) -> Resources:
    """The resources of the unit of work that opened `session`: for an event handler
    (`kith.runtime.events`) whose work after the commit needs them."""
    resources: Resources | None = session.info.get(_RESOURCES_KEY)
    if resources is None:
        raise RuntimeError("resources_of() needs a session opened by unit_of_work")
    return resources


async def _run_after_commit(actions: list[Callable[[], Awaitable[None]]]) -> None:
    for action in actions:
        try:
            await action()
        except Exception as exc:
            log.warning("after_commit_failed", error=type(exc).__name__)


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


# Set in the task that holds the write gate, so a nested writing unit of work in it fails
# at once instead of waiting for itself.
_holding_gate: ContextVar[bool] = ContextVar("kith_holding_write_gate", default=False)


async def _enter(gate: asyncio.Lock) -> None:
    if _holding_gate.get():
        raise RuntimeError("a writing unit of work inside another one would wait for itself on SQLite")
    # As long as SQLite itself would have waited for its lock; then a 503 (kith.core.outages).
    await asyncio.wait_for(gate.acquire(), SQLITE_BUSY_TIMEOUT_MS / 1000)
    _holding_gate.set(True)


@asynccontextmanager
async def unit_of_work(resources: Resources, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """Run a block in one transaction.

    Commits when the block ends normally, rolls back when it raises (except a
    `DomainError` that `keeps_changes`) and then runs the block's `on_rollback` undos,
    and hands live events and jobs queued in the block on only after the commit.
    `write=True` takes SQLite's write lock up front. A read-only unit (`write=False`)
    runs without BEGIN and COMMIT: on PostgreSQL at READ COMMITTED every statement takes
    its own snapshot even inside a transaction, so one would add two round trips and no
    consistency, and SQLite's reads follow suit (its BEGIN cost a trip through aiosqlite's
    thread). Nor does it call the ORM's commit unless the block left objects to flush
    (about 20 µs a read request).

    On SQLite, writing units of work first queue in the process for its write gate (one at
    a time, first come first served, `write_gate`) and only then take a connection and the
    database's write lock: they no longer poll SQLite's lock with growing sleeps, which
    let late comers overtake and left a few writers waiting seconds under load.
    """
    gate = resources.write_gate if write else None
    if gate is not None:
        await _enter(gate)
    changed: set[str] = set()
    committed: list[Callable[[], Awaitable[None]]] = []
    try:
        async with resources.session_factory() as session:
            bind(session, resources.subscribers)
            session.info[_RESOURCES_KEY] = resources
            autocommit = False
            if write:
                await session.connection(execution_options={WRITE_INTENT: True})
            elif resources.engine.dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                autocommit = True
            else:
                await session.connection(execution_options={READ_ONLY: True})
                autocommit = True
            try:
                yield session
                if not autocommit or session.new or session.dirty or session.deleted:
                    # (Each statement of an autocommit unit is committed by PostgreSQL as it
                    # runs; the ORM's commit would only flush what the block left pending.)
                    await session.commit()
            except DomainError as error:
                if error.keeps_changes:
                    await session.commit()
                    session.info.pop(_ROLLBACK_KEY, None)
                    committed = session.info.pop(_COMMIT_KEY, [])
                    changed = changed_users(session.info)
                else:
                    session.info.pop(_COMMIT_KEY, None)
                    await _rollback(session)
                raise
            except BaseException:
                session.info.pop(_COMMIT_KEY, None)
                await _rollback(session)
                raise
            session.info.pop(_ROLLBACK_KEY, None)
            committed = session.info.pop(_COMMIT_KEY, [])
            changed = changed_users(session.info)
            jobs = pending_jobs(session)
            events = pending_events(session)
    finally:
        if gate is not None:
            _holding_gate.set(False)
            gate.release()
        await _run_after_commit(committed)
        if changed:
            # Users or sessions changed: no process may go on believing what it cached.
            await resources.sessions_changed(changed)
    await resources.realtime.publish_all(events)
    await resources.jobs.dispatch(jobs)
