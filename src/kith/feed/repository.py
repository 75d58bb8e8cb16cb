"""The feed's queries: which posts belong in a reader's feed, read straight from SQL.

A post is in the feed of its author and of the author's friends, unless it is private
(then only its author's) or its author is suspended or in a block with the reader. The
feed is a social surface, so staff see the same feed as anyone (their power to read
every post applies to the posts API, not here).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from kith.db.models import Friendship, Post, User, Visibility
from kith.posts import read_model
from kith.posts.schemas import PostView
from kith.social.relations import blocked_either_way

# Built once: making an alias costs more than the rest of the statement.
author = aliased(User, name="author")


def feed_posts(
    reader_id: str | ColumnElement[str],
    author_id: ColumnElement[str] | InstrumentedAttribute[str] = Post.author_id,
) -> Select[Post, User]:
    """Every post in the reader's feed, with its author; callers add order and limits.

    `author_id` is how the filter reads the post's author: a caller may pass an expression
    the planner cannot use an index for (see `_WINDOWED_FIRST`).
    """
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
                author_id == reader_id,
                and_(
                    author_id.in_(friend_ids),
                    Post.visibility != Visibility.private,
                    ~blocked_either_way(reader_id, author_id),
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

# SQLite, which has no plan for "the newest rows of many authors" but sorting all their rows
# (at 1,000,000 posts and 200 friends, 20,000 rows in a temporary B-tree for every page).
# Instead a page first walks the newest posts in id order, through the primary key's index,
# and keeps those in the feed: a reader with 200 of 10,000 users as friends finds a page in
# about a thousand posts. The walk is bounded: it looks only at the `window` newest posts
# (older than the cursor); a reader whose feed is too sparse to fill a page there gets the
# rest from the author-index plan below the window, which is cheap for exactly such a
# reader. `+posts.author_id` keeps SQLite from choosing the author index for the walk.
FEED_WINDOW = 4_000
_WINDOW = bindparam("window", type_=Integer)
_BEFORE = bindparam("before", type_=String)
_WINDOW_POST = aliased(Post, name="window_post")


def _window_floor(after_cursor: bool) -> ColumnElement[str]:
    """The id of the oldest post in the window: `window` posts back (from the cursor)."""
    newest = select(_WINDOW_POST.id).order_by(_WINDOW_POST.id.desc()).limit(1).offset(_WINDOW)
    if after_cursor:
        newest = newest.where(_WINDOW_POST.id < _BEFORE)
    return func.coalesce(newest.scalar_subquery(), "")


_WALKED = feed_posts(_READER, literal_column("+posts.author_id", String)).with_only_columns(Post.id)
_WINDOWED_FIRST = read_model.cards(
    _WALKED.where(Post.id >= _window_floor(False)).order_by(Post.id.desc()).limit(_LIMIT)
)
_WINDOWED_BEFORE = read_model.cards(
    _WALKED.where(Post.id < _BEFORE, Post.id >= _window_floor(True)).order_by(Post.id.desc()).limit(_LIMIT)
)
_BEYOND_FIRST = read_model.cards(
    _FEED_IDS.where(Post.id < _window_floor(False)).order_by(Post.id.desc()).limit(_LIMIT)
)
_BEYOND_BEFORE = read_model.cards(
    _FEED_IDS.where(Post.id < _BEFORE, Post.id < _window_floor(True)).order_by(Post.id.desc()).limit(_LIMIT)
)


async def page_views(session: AsyncSession, reader: User, before: str | None, limit: int) -> list[PostView]:
    """Up to `limit` feed posts older than the id `before`, newest first (keyset, no OFFSET),
    as the API shows them: one round trip (on SQLite, two for a reader whose feed is sparse)."""
    values: dict[str, object] = {"reader_id": reader.id, "viewer_id": reader.id, "limit": limit}
    if before is not None:
        values["before"] = before
    if session.get_bind().dialect.name != "sqlite":
        return read_model.views(
            await read_model.fetch(session, _FIRST_CARDS if before is None else _CARDS_BEFORE, values)
        )
    values["window"] = FEED_WINDOW
    found = read_model.views(
        await read_model.fetch(session, _WINDOWED_FIRST if before is None else _WINDOWED_BEFORE, values)
    )
    if len(found) < limit:
        values["limit"] = limit - len(found)
        rest = await read_model.fetch(session, _BEYOND_FIRST if before is None else _BEYOND_BEFORE, values)
        found.extend(read_model.views(rest))
    return found


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
    return read_model.views(await read_model.fetch(session, statement, values))


async def newest_ids(session: AsyncSession, reader: User, limit: int) -> list[str]:
    """The ids of the newest `limit` feed posts: what a cold timeline is rebuilt from."""
    return await page_ids(session, reader, None, limit)


# On the table, not the mapped class: thousands of plain ids need none of the ORM's row
# handling, which cost three times the query itself at 2,000 friends (docs/benchmarks.md).
_FRIENDSHIPS = Friendship.__table__
# The friends' ids as one space-separated string (`string_agg` on PostgreSQL, `group_concat`
# on SQLite): one value for the driver and SQLAlchemy to hand over instead of a row per
# friend, 1.8 to 0.8 ms of CPU at 2,000 friends. Ids never hold a space.
_AUDIENCE = select(func.aggregate_strings(_FRIENDSHIPS.c.friend_id, " ")).where(
    _FRIENDSHIPS.c.user_id == bindparam("author_id", type_=String)
)


_FRIEND_IDS_UP_TO = (
    select(_FRIENDSHIPS.c.friend_id)
    .where(_FRIENDSHIPS.c.user_id == bindparam("author_id", type_=String))
    .limit(bindparam("limit", type_=Integer))
    .subquery()
)
_AUDIENCE_UP_TO = select(func.aggregate_strings(_FRIEND_IDS_UP_TO.c.friend_id, " "))


async def audience(session: AsyncSession, author_id: str, *, friends_up_to: int | None = None) -> list[str]:
    """Whose timelines a new post of `author_id` goes to: the author and their friends
    (at most `friends_up_to` of them, when given: enough to tell a large audience)."""
    if friends_up_to is None:
        friends: str | None = await session.scalar(_AUDIENCE, {"author_id": author_id})
    else:
        friends = await session.scalar(_AUDIENCE_UP_TO, {"author_id": author_id, "limit": friends_up_to})
    return [author_id, *(friends.split(" ") if friends else ())]
