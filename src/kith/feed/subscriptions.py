"""How the feed reacts to what other domains announce.

Only with Redis timelines (`KITH_FEED_TIMELINES`, off by default): there the feed keeps
warm timelines that new posts and new friendships change. Otherwise every feed read is one
SQL query and there is nothing to keep up to date, so the feed does not subscribe at all.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.jobs import enqueue
from kith.feed import jobs, repository
from kith.posts.events import PostPublished
from kith.runtime.events import Subscribers
from kith.runtime.transaction import after_commit, resources_of
from kith.social.events import FriendshipStarted


def subscribe(subscribers: Subscribers, settings: Settings) -> None:
    if settings.redis_url and settings.feed_timelines:
        subscribers.on(PostPublished, post_published)
        subscribers.on(FriendshipStarted, friendship_started)


async def post_published(session: AsyncSession, event: PostPublished) -> None:
    """A new post, or one whose audience changed: push it to warm timelines after commit.

    Timelines hold candidates only and every read re-checks them in SQL, so a post
    whose audience shrank needs nothing; one whose audience grew must be in them.

    The request pushes it itself, right after its commit: the audience is one statement in
    its transaction and the push one Redis round trip, cheaper than queueing a job (an XADD)
    and running it in a worker (its own transaction, the push, an acknowledgement). An
    author with more than `KITH_FEED_PUSH_IN_REQUEST_MAX` friends gets the job instead, so
    that a post's request does not grow with its audience (docs/decisions.md).
    """
    resources = resources_of(session)
    most = resources.settings.feed_push_in_request_max
    audience = await repository.audience(session, event.author_id, friends_up_to=most + 1)
    if len(audience) > most + 1:  # the author and more than `most` friends
        enqueue(session, jobs.fan_out_post, post_id=event.post_id, author_id=event.author_id)
    else:
        after_commit(session, partial(jobs.push_post, resources, event.post_id, audience))


async def friendship_started(session: AsyncSession, event: FriendshipStarted) -> None:
    """New friends: their timelines lack each other's older posts; rebuild them on next
    read. Dropped by the request right after its commit (one DEL)."""
    after_commit(session, partial(jobs.drop_timelines, resources_of(session), list(event.user_ids)))
