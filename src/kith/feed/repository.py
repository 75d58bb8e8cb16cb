"""The feed's queries: which posts belong in a reader's feed, read straight from SQL.

A post is in the feed of its author and of the author's friends, unless it is private
(then only its author's) or its author is suspended or in a block with the reader. The
feed is a social surface, so staff see the same feed as anyone (their power to read
every post applies to the posts API, not here).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, Select, String, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kith.db.models import Friendship, Post, User, Visibility
from kith.posts import read_model
from kith.posts.schemas import PostView
from kith.social.relations import blocked_either_way

# Built once: making an alias costs more than the rest of the statement.
author = aliased(User, name="author")


def feed_posts(reader_id: str | ColumnElement[str]) -> Select[Post, User]:
    """Every post in the reader's feed, with its author; callers add order and limits."""
    friend_ids = select(Friendship.friend_id).where(Friendship.user_id == reader_id)
    return (
        select(Post, author)
        .join(author, author.id == Post.author_id)
        .where(
            # Outside the OR (a suspended reader cannot be reading): a condition on the
            # joined table inside it kept PostgreSQL from joining users by primary key,
            # and it scanned every user for every post (126 ms against 0.8 ms a page).
            author.suspended.is_(False),
            or_(
                Post.author_id == reader_id,
                and_(
                    Post.author_id.in_(friend_ids),
                    Post.visibility != Visibility.private,
                    ~blocked_either_way(reader_id, Post.author_id),
                ),
            ),
        )
    )


# The feed's statements are built once, with bound parameters, and run with values: building
# this statement and deriving its cache key cost more CPU than PostgreSQL's answer to it.
# SQLAlchemy keeps a statement's cache key once computed, so a prebuilt one is keyed once.
_READER = bindparam("reader_id", type_=String)
_FEED = feed_posts(_READER)
_LIMIT = bindparam("limit", type_=Integer)
_FEED_IDS = _FEED.with_only_columns(Post.id)
_FIRST_PAGE = _FEED_IDS.order_by(Post.id.desc()).limit(_LIMIT)
_PAGE_BEFORE = _FIRST_PAGE.where(Post.id < bindparam("before", type_=String))
_AMONG = _FEED_IDS.where(Post.id.in_(bindparam("post_ids", expanding=True))).order_by(Post.id.desc())
# A page and everything it shows, in one statement (kith.posts.read_model).
_FIRST_CARDS = read_model.cards(_FIRST_PAGE)
_CARDS_BEFORE = read_model.cards(_PAGE_BEFORE)


async def page_views(session: AsyncSession, reader: User, before: str | None, limit: int) -> list[PostView]:
    """Up to `limit` feed posts older than the id `before`, newest first (keyset, no OFFSET),
    as the API shows them: one round trip."""
    values: dict[str, object] = {"reader_id": reader.id, "viewer_id": reader.id, "limit": limit}
    if before is not None:
        values["before"] = before
    rows = await session.execute(_FIRST_CARDS if before is None else _CARDS_BEFORE, values)
    return read_model.views(rows)


async def page_ids(session: AsyncSession, reader: User, before: str | None, limit: int) -> list[str]:
    """The ids of `page_views`' posts."""
    values: dict[str, object] = {"reader_id": reader.id, "limit": limit}
    if before is not None:
        values["before"] = before
    return list((await session.scalars(_FIRST_PAGE if before is None else _PAGE_BEFORE, values)).all())


async def among(session: AsyncSession, reader: User, post_ids: Sequence[str]) -> list[str]:
    """Those of `post_ids` that are (still) in the reader's feed, newest first."""
    if not post_ids:
        return []
    return list((await session.scalars(_AMONG, {"reader_id": reader.id, "post_ids": list(post_ids)})).all())


async def views_of(session: AsyncSession, reader: User, post_ids: Sequence[str]) -> list[PostView]:
    """The posts `post_ids` (already checked to be in the reader's feed) as the API shows them."""
    if not post_ids:
        return []
    statement, values = read_model.by_ids(post_ids, reader.id)
    return read_model.views(await session.execute(statement, values))


async def newest_ids(session: AsyncSession, reader: User, limit: int) -> list[str]:
    """The ids of the newest `limit` feed posts: what a cold timeline is rebuilt from."""
    return await page_ids(session, reader, None, limit)


async def audience(session: AsyncSession, author_id: str) -> list[str]:
    """Whose timelines a new post of `author_id` goes to: the author and their friends."""
    friends = await session.scalars(select(Friendship.friend_id).where(Friendship.user_id == author_id))
    return [author_id, *friends.all()]
