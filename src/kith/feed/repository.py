"""The feed's queries: which posts belong in a reader's feed, read straight from SQL.

A post is in the feed of its author and of the author's friends, unless it is private
(then only its author's) or its author is suspended or in a block with the reader. The
feed is a social surface, so staff see the same feed as anyone (their power to read
every post applies to the posts API, not here).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kith.db.models import Friendship, Post, User, Visibility
from kith.posts.repository import AuthoredPost
from kith.social.relations import blocked_either_way

# Built once: making an alias costs more than the rest of the statement.
author = aliased(User, name="author")


def feed_posts(reader: User) -> Select[Post, User]:
    """Every post in the reader's feed, with its author; callers add order and limits."""
    friend_ids = select(Friendship.friend_id).where(Friendship.user_id == reader.id)
    return (
        select(Post, author)
        .join(author, author.id == Post.author_id)
        .where(
            or_(
                Post.author_id == reader.id,
                and_(
                    Post.author_id.in_(friend_ids),
                    Post.visibility != Visibility.private,
                    author.suspended.is_(False),
                    ~blocked_either_way(reader.id, Post.author_id),
                ),
            )
        )
    )


async def page(session: AsyncSession, reader: User, before: str | None, limit: int) -> list[AuthoredPost]:
    """Up to `limit` feed posts older than the id `before`, newest first (keyset, no OFFSET)."""
    statement = feed_posts(reader)
    if before is not None:
        statement = statement.where(Post.id < before)
    rows = await session.execute(statement.order_by(Post.id.desc()).limit(limit))
    return [AuthoredPost(row[0], row[1]) for row in rows]


async def among(session: AsyncSession, reader: User, post_ids: Sequence[str]) -> list[AuthoredPost]:
    """Those of `post_ids` that are (still) in the reader's feed, newest first."""
    if not post_ids:
        return []
    rows = await session.execute(feed_posts(reader).where(Post.id.in_(post_ids)).order_by(Post.id.desc()))
    return [AuthoredPost(row[0], row[1]) for row in rows]


async def newest_ids(session: AsyncSession, reader: User, limit: int) -> list[str]:
    """The ids of the newest `limit` feed posts: what a cold timeline is rebuilt from."""
    statement = feed_posts(reader).with_only_columns(Post.id).order_by(Post.id.desc()).limit(limit)
    return list((await session.scalars(statement)).all())


async def audience(session: AsyncSession, author_id: str) -> list[str]:
    """Whose timelines a new post of `author_id` goes to: the author and their friends."""
    friends = await session.scalars(select(Friendship.friend_id).where(Friendship.user_id == author_id))
    return [author_id, *friends.all()]
