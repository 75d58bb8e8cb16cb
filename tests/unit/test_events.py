"""kith.runtime.events: announcements reach the handlers of their type, in order, in the
announcer's transaction; and every event a domain announces has a subscriber once the
application is assembled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

import kith.main  # noqa: F401 - the composition root registers every subscription
from kith.posts.events import PostPublished
from kith.runtime import events
from kith.runtime.resources import Resources
from kith.social.events import FriendshipStarted


@dataclass(frozen=True)
class Happened:
    what: str


@dataclass(frozen=True)
class Unrelated:
    what: str


async def test_an_announcement_reaches_each_handler_of_its_type_in_order() -> None:
    heard: list[tuple[str, Any, Any, str]] = []

    @events.reacts_to(Happened)
    async def first(session: AsyncSession, resources: Resources, event: Happened) -> None:
        heard.append(("first", session, resources, event.what))

    @events.reacts_to(Happened)
    async def second(session: AsyncSession, resources: Resources, event: Happened) -> None:
        heard.append(("second", session, resources, event.what))

    session, resources = cast(AsyncSession, object()), cast(Resources, object())
    await events.announce(session, resources, Happened("it"))
    await events.announce(session, resources, Unrelated("other"))
    assert heard == [("first", session, resources, "it"), ("second", session, resources, "it")]


async def test_an_event_nobody_listens_to_is_announced_to_nobody() -> None:
    await events.announce(cast(AsyncSession, object()), cast(Resources, object()), Unrelated("x"))
    assert events.handlers_of(Unrelated) == []


def test_every_domain_event_has_a_subscriber_in_the_assembled_application() -> None:
    for event_type in (PostPublished, FriendshipStarted):
        assert events.handlers_of(event_type), f"nobody reacts to {event_type.__name__}"
