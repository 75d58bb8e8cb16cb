"""How the feed reacts to what other domains announce.

Only on the Redis path: there the feed keeps warm timelines that new posts and new
friendships change. Without Redis every feed read is one SQL query and there is nothing
to keep up to date, so the feed does not subscribe at all.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.jobs import enqueue
from kith.feed import jobs
from kith.posts.events import PostPublished
from kith.runtime.events import Subscribers
from kith.social.events import FriendshipStarted


def subscribe(subscribers: Subscribers, settings: Settings) -> None:
    if settings.redis_url:
        subscribers.on(PostPublished, post_published)
        subscribers.on(FriendshipStarted, friendship_started)


async def post_published(session: AsyncSession, event: PostPublished) -> None:
    """A new post, or one whose audience changed: push it to warm timelines after commit.

    Timelines hold candidates only and every read re-checks them in SQL, so a post
    whose audience shrank needs nothing; one whose audience grew must be in them.
    """
    enqueue(session, jobs.fan_out_post, post_id=event.post_id, author_id=event.author_id)


async def friendship_started(session: AsyncSession, event: FriendshipStarted) -> None:
    """New friends: their timelines lack each other's older posts; rebuild them on next read."""
    enqueue(session, jobs.forget_timelines, user_ids=list(event.user_ids))
