"""Announcements one domain makes and others react to, inside the same transaction.

A domain that changes something other domains care about announces an event (a frozen
dataclass of plain values) with `announce(session, resources, event)`; it does not know
who listens. A domain that reacts registers a handler with `@reacts_to(EventType)` in its
`subscriptions` module, which the composition root (`kith.main`) imports. So dependencies
point from the listener to the announcer, never back (docs/architecture.md).

Handlers run at once, in the announcer's transaction: they add rows or queue jobs (which
run only after the commit), so an announcement and its effects commit or roll back
together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

E = TypeVar("E")
Handler = Callable[[AsyncSession, "Resources", E], Awaitable[None]]

_handlers: defaultdict[type, list[Handler[Any]]] = defaultdict(list)


def reacts_to(event_type: type[E]) -> Callable[[Handler[E]], Handler[E]]:
    """Register the decorated coroutine `handler(session, resources, event)` for `event_type`."""

    def register(handler: Handler[E]) -> Handler[E]:
        _handlers[event_type].append(handler)
        return handler

    return register


def handlers_of(event_type: type) -> list[Handler[Any]]:
    """The handlers registered for `event_type`, in registration order."""
    return list(_handlers.get(event_type, ()))


async def announce(session: AsyncSession, resources: Resources, event: object) -> None:
    """Run every handler of the event's type now, in `session`'s transaction."""
    for handler in _handlers.get(type(event), ()):
        await handler(session, resources, event)
