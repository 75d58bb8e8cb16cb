"""How the feed reacts to what other domains announce (Redis path only).

Imported by the composition root (`kith.main`), which registers these handlers.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.jobs import enqueue
from kith.feed import jobs
from kith.posts.events import PostPublished
from kith.runtime.events import reacts_to
from kith.runtime.resources import Resources
from kith.social.events import FriendshipStarted


@reacts_to(PostPublished)
async def post_published(session: AsyncSession, resources: Resources, event: PostPublished) -> None:
    """A new post, or one whose audience changed: push it to warm timelines after commit.

    Timelines hold candidates only and every read re-checks them in SQL, so a post
    whose audience shrank needs nothing; one whose audience grew must be in them.
    """
    if resources.redis is not None:
        enqueue(session, jobs.fan_out_post, post_id=event.post_id, author_id=event.author_id)


@reacts_to(FriendshipStarted)
async def friendship_started(session: AsyncSession, resources: Resources, event: FriendshipStarted) -> None:
    """New friends: their timelines lack each other's older posts; rebuild them on next read."""
    if resources.redis is not None:
        enqueue(session, jobs.forget_timelines, user_ids=list(event.user_ids))
