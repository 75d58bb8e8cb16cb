"""What the Mastodon-compatible streams need told (docs/mastodon.md#streaming).

Each new, changed or removed post is one live event on its author's topic (and a public
post's on the public topic too), whoever reads it: a stream listens to the topics of the
people it may read, so a post costs one publish (one Redis round trip with the request's
other events), not one per friend. A new or ended friendship tells both users' open
streams, on their own topics, to listen again.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.realtime import PUBLIC_POSTS, Event, author_posts, publish_after_commit
from kith.db.models import Visibility
from kith.posts.events import PostPublished, PostRemoved
from kith.runtime.events import Subscribers
from kith.social.events import FriendshipEnded, FriendshipStarted

# The live events' names: internal ones begin with `_`, so Kith's own stream passes them by.
POST = "_post"
POST_REMOVED = "_post_removed"
FRIENDS = "_friends"
# Which topic an event came through (`via`): the author's, or the public one.
VIA_AUTHOR = "author"
VIA_PUBLIC = "public"


def subscribe(subscribers: Subscribers, settings: Settings) -> None:
    subscribers.on(PostPublished, post_published)
    subscribers.on(PostRemoved, post_removed)
    subscribers.on(FriendshipStarted, friends_changed)
    subscribers.on(FriendshipEnded, friends_changed)


def _publish(session: AsyncSession, author_id: str, visibility: str, event: Event) -> None:
    publish_after_commit(session, author_posts(author_id), {**event, "via": VIA_AUTHOR})
    if visibility == Visibility.public:
        publish_after_commit(session, PUBLIC_POSTS, {**event, "via": VIA_PUBLIC})


async def post_published(session: AsyncSession, event: PostPublished) -> None:
    live = {"event": POST, "post": event.post_id, "author": event.author_id, "new": event.new}
    _publish(session, event.author_id, event.visibility, live)


async def post_removed(session: AsyncSession, event: PostRemoved) -> None:
    live = {"event": POST_REMOVED, "post": event.post_id, "author": event.author_id}
    _publish(session, event.author_id, event.visibility, live)


async def friends_changed(session: AsyncSession, event: FriendshipStarted | FriendshipEnded) -> None:
    """On each one's own topic, which their `user` streams listen to (so, like a post, it costs
    nothing while no stream listens); streams of other users on it pass it by."""
    live = {"event": FRIENDS, "users": list(event.user_ids)}
    for user_id in event.user_ids:
        publish_after_commit(session, author_posts(user_id), live)
