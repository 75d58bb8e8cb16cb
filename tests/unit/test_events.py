"""kith.runtime.events: announcements reach the handlers of their type, in order, in the
announcer's transaction; and every event a domain announces has a subscriber once the
application is assembled with Redis (the feed listens only there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.main import subscribers
from kith.mastodon import subscriptions as mastodon_subscriptions
from kith.posts.events import PostPublished
from kith.runtime import events
from kith.social.events import FriendshipStarted


@dataclass(frozen=True)
class Happened:
    what: str


@dataclass(frozen=True)
class Unrelated:
    what: str


class _Session:
    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


def _session() -> AsyncSession:
    return cast(AsyncSession, _Session())


async def test_an_announcement_reaches_each_handler_of_its_type_in_order() -> None:
    heard: list[tuple[str, Any, str]] = []

    async def first(session: AsyncSession, event: Happened) -> None:
        heard.append(("first", session, event.what))

    async def second(session: AsyncSession, event: Happened) -> None:
        heard.append(("second", session, event.what))

    chosen = events.Subscribers()
    chosen.on(Happened, first)
    chosen.on(Happened, second)
    session = _session()
    events.bind(session, chosen)
    await events.announce(session, Happened("it"))
    await events.announce(session, Unrelated("other"))
    assert heard == [("first", session, "it"), ("second", session, "it")]


async def test_an_event_nobody_listens_to_is_announced_to_nobody() -> None:
    session = _session()
    events.bind(session, events.Subscribers())
    await events.announce(session, Unrelated("x"))
    assert events.Subscribers().handlers_of(Unrelated) == []


async def test_announcing_on_a_session_no_unit_of_work_opened_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="unit_of_work"):
        await events.announce(_session(), Happened("lost"))


def test_every_domain_event_has_a_subscriber_in_the_assembled_application() -> None:
    with_redis = subscribers(Settings(redis_url="redis://127.0.0.1:6379/0", feed_timelines=True))
    for event_type in (PostPublished, FriendshipStarted):
        assert with_redis.handlers_of(event_type), f"nobody reacts to {event_type.__name__}"


def test_without_redis_the_feed_keeps_nothing_warm_and_listens_to_nothing() -> None:
    embedded = subscribers(Settings(redis_url=None))
    # Only the Mastodon-compatible streams' live events, which the feed does not need.
    assert embedded.handlers_of(PostPublished) == [mastodon_subscriptions.post_published]
    assert embedded.handlers_of(FriendshipStarted) == [mastodon_subscriptions.friends_changed]


def test_with_redis_but_timelines_off_the_feed_listens_to_nothing() -> None:
    # The default with Redis: every feed page is SQL, so a post or a friendship costs nothing more.
    shared = subscribers(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert shared.handlers_of(PostPublished) == [mastodon_subscriptions.post_published]
    assert shared.handlers_of(FriendshipStarted) == [mastodon_subscriptions.friends_changed]
