"""Announcements one domain makes and others react to, inside the same transaction.

A domain that changes something other domains care about announces an event (a frozen
dataclass of plain values) with `announce(session, event)`; it does not know who listens.
A domain that reacts offers a `subscribe(subscribers, settings)` function in its
`subscriptions` module; the composition root (`kith.main.open_resources`) calls it once
per process, so a domain may listen only where it has work to do (the feed only when
Redis holds its timelines). Dependencies point from the listener to the announcer,
never back (docs/architecture.md).

Handlers run at once, in the announcer's transaction: they add rows or queue jobs (which
run only after the commit), so an announcement and its effects commit or roll back
together. The unit of work binds the process's subscribers to each session it opens
(`bind`), as it collects the jobs and live events queued on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

E = TypeVar("E")
Handler = Callable[[AsyncSession, E], Awaitable[None]]

_SESSION_KEY = "kith_subscribers"


class Subscribers:
    """Who reacts to which event type in this process, in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[Handler[Any]]] = defaultdict(list)

    def on(self, event_type: type[E], handler: Handler[E]) -> None:
        """Run `handler(session, event)` for every announced `event_type`."""
        self._handlers[event_type].append(handler)

    def handlers_of(self, event_type: type) -> list[Handler[Any]]:
        return list(self._handlers.get(event_type, ()))


def bind(session: AsyncSession, subscribers: Subscribers) -> None:
    """Let announcements made on `session` reach `subscribers` (the unit of work does this)."""
    session.info[_SESSION_KEY] = subscribers


async def announce(session: AsyncSession, event: object) -> None:
    """Run every handler of the event's type now, in `session`'s transaction."""
    subscribers: Subscribers | None = session.info.get(_SESSION_KEY)
    if subscribers is None:
        raise RuntimeError("announce() needs a session opened by unit_of_work")
    for handler in subscribers.handlers_of(type(event)):
        await handler(session, event)
