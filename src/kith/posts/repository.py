"""Every query on posts, likes and comments.

Nothing here loads a post, a like or a comment without `readable_posts(viewer)` (or
`readable_comments(viewer)`, built on it): what a viewer may read is decided in SQL,
once, by `can_read_post`, never by filtering rows in Python afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    delete,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kith.core.pagination import CursorParams
from kith.db.models import Comment, Like, Post, User
from kith.posts.visibility import can_read_post, readable_by_user
from kith.social.relations import blocked_either_way

# Counter updates bypass the identity map: the value a statement returns is the truth.
NO_SYNC = {"synchronize_session": False}


# Aliases, so the author join does not swallow the correlated `users` subquery inside
# `can_read_post`. Built once: making an alias costs more than the rest of a statement.
POST_AUTHOR = aliased(User, name="author")
LIKER = aliased(User, name="liker")
COMMENT_AUTHOR = aliased(User, name="comment_author")


class AuthoredPost(NamedTuple):
    post: Post
    author: User


class AuthoredComment(NamedTuple):
    comment: Comment
    author: User
    # Whoever wrote the post may delete comments under it.
    post_author_id: str


class LikedBy(NamedTuple):
    like: Like
    user: User


def shown_to(viewer: User, person: type[User]) -> ColumnElement[bool]:
    """Whether `person` (a comment author, a liker) is shown to the viewer.

    Blocks hide people both ways and suspended accounts are hidden, except from staff.
    """
    if viewer.is_staff:
        return true()
    return (person.suspended.is_(False)) & ~blocked_either_way(viewer.id, person.id)


_WITH_AUTHOR = select(Post, POST_AUTHOR).join(POST_AUTHOR, POST_AUTHOR.id == Post.author_id)


def readable_posts(viewer: User) -> Select[Post, User]:
    """The posts `viewer` may read, each with its author, in one query."""
    return _WITH_AUTHOR.where(can_read_post(viewer))


# Likes, comments and post reads load their post with this: built once, run with values
# (see kith.feed.repository). Staff read every post; anyone else by the one rule.
_ONE_POST = _WITH_AUTHOR.where(Post.id == bindparam("post_id", type_=String))
_READABLE_POST = _ONE_POST.where(readable_by_user(bindparam("viewer_id", type_=String)))


async def readable_post(session: AsyncSession, viewer: User, post_id: str) -> AuthoredPost | None:
    if viewer.is_staff:
        result = await session.execute(_ONE_POST, {"post_id": post_id})
    else:
        result = await session.execute(_READABLE_POST, {"post_id": post_id, "viewer_id": viewer.id})
    row = result.first()
    return AuthoredPost(row[0], row[1]) if row else None


async def readable_posts_by_id(
    session: AsyncSession, viewer: User, post_ids: Sequence[str]
) -> list[AuthoredPost]:
    if not post_ids:
        return []
    rows = await session.execute(readable_posts(viewer).where(Post.id.in_(post_ids)))
    return [AuthoredPost(row[0], row[1]) for row in rows]


async def page_of_posts(
    session: AsyncSession, statement: Select[Post, User], params: CursorParams
) -> tuple[list[AuthoredPost], str | None]:
    """One page of `statement` (from `readable_posts`), newest first."""
    rows = await session.execute(params.window(statement, Post.id))
    return params.cut([AuthoredPost(row[0], row[1]) for row in rows], lambda item: item.post.id)


async def posts_between(
    session: AsyncSession,
    statement: Select[Post, User],
    *,
    below: str | None,
    above: str | None,
    limit: int,
    from_above: bool = False,
) -> list[AuthoredPost]:
    """Up to `limit` posts of `statement` with ids between `above` and `below` (both left
    out), newest first: the newest of them, or with `from_above` the oldest (those right
    above `above`). Ids are time-ordered, so this is a keyset window either way."""
    if below is not None:
        statement = statement.where(Post.id < below)
    if above is not None:
        statement = statement.where(Post.id > above)
    statement = statement.order_by(Post.id.asc() if from_above else Post.id.desc()).limit(limit)
    found = [AuthoredPost(row[0], row[1]) for row in await session.execute(statement)]
    return found[::-1] if from_above else found


def posts_by_author(viewer: User, author_id: str) -> Select[Post, User]:
    return readable_posts(viewer).where(Post.author_id == author_id)


async def blocked(session: AsyncSession, viewer_id: str, other_id: str) -> bool:
    return bool(await session.scalar(select(blocked_either_way(viewer_id, literal(other_id)))))


async def delete_post(session: AsyncSession, post_id: str) -> None:
    # Likes and comments go with it through ON DELETE CASCADE.
    await session.execute(delete(Post).where(Post.id == post_id).execution_options(**NO_SYNC))


# --- likes ----------------------------------------------------------------------------


# Every page of posts runs this: built once, run with values (see kith.feed.repository).
_LIKED_AMONG = select(Like.post_id).where(
    Like.user_id == bindparam("user_id", type_=String),
    Like.post_id.in_(bindparam("post_ids", expanding=True)),
)


async def liked_among(session: AsyncSession, user_id: str, post_ids: Sequence[str]) -> set[str]:
    """Which of `post_ids` the user liked, in one query."""
    if not post_ids:
        return set()
    rows = await session.scalars(_LIKED_AMONG, {"user_id": user_id, "post_ids": list(post_ids)})
    return set(rows.all())


async def insert_like(session: AsyncSession, post_id: str, user_id: str, now: datetime) -> bool:
    """Insert the like unless it exists; True when a row was inserted.

    ON CONFLICT DO NOTHING makes a concurrent second like of the same user a no-op
    instead of an error, and tells the caller whether to count it.
    """
    values = {"post_id": post_id, "user_id": user_id, "created_at": now}
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql.insert(Like).values(values).on_conflict_do_nothing().returning(Like.user_id)
    else:
        statement = sqlite.insert(Like).values(values).on_conflict_do_nothing().returning(Like.user_id)
    return (await session.execute(statement)).first() is not None


async def delete_like(session: AsyncSession, post_id: str, user_id: str) -> bool:
    """Delete the like; True when there was one."""
    statement = (
        delete(Like)
        .where(Like.post_id == post_id, Like.user_id == user_id)
        .returning(Like.user_id)
        .execution_options(**NO_SYNC)
    )
    return (await session.execute(statement)).first() is not None


async def change_like_count(session: AsyncSession, post_id: str, delta: int) -> int | None:
    """Add `delta` to the counter in SQL (no read-modify-write); returns the new count."""
    statement = (
        update(Post)
        .where(Post.id == post_id)
        .values(like_count=Post.like_count + delta)
        .returning(Post.like_count)
        .execution_options(**NO_SYNC)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def like_count(session: AsyncSession, post_id: str) -> int:
    return int(await session.scalar(select(Post.like_count).where(Post.id == post_id)) or 0)


async def page_of_likers(
    session: AsyncSession, viewer: User, post_id: str, params: CursorParams
) -> tuple[list[LikedBy], str | None]:
    """Who liked the post, newest like first; keyset on (liked at, user id)."""
    liker = LIKER
    statement = (
        select(Like, liker)
        .join(liker, liker.id == Like.user_id)
        .where(Like.post_id == post_id, shown_to(viewer, liker))
    )
    window = params.window_by_time(statement, Like.created_at, Like.user_id)
    rows = [LikedBy(row[0], row[1]) for row in await session.execute(window)]
    return params.cut_by_time(rows, lambda item: item.like.created_at, lambda item: item.like.user_id)


# --- comments -------------------------------------------------------------------------


def readable_comments(viewer: User) -> Select[Comment, User, str]:
    """Comments on posts the viewer may read, by people shown to the viewer, with authors."""
    author = COMMENT_AUTHOR
    return (
        select(Comment, author, Post.author_id)
        .join(author, author.id == Comment.author_id)
        .join(Post, Post.id == Comment.post_id)
        .where(can_read_post(viewer), shown_to(viewer, author))
    )


async def readable_comment(session: AsyncSession, viewer: User, comment_id: str) -> AuthoredComment | None:
    row = (await session.execute(readable_comments(viewer).where(Comment.id == comment_id))).first()
    return AuthoredComment(row[0], row[1], row[2]) if row else None


async def readable_comments_by_id(
    session: AsyncSession, viewer: User, comment_ids: Sequence[str]
) -> list[AuthoredComment]:
    if not comment_ids:
        return []
    rows = await session.execute(readable_comments(viewer).where(Comment.id.in_(comment_ids)))
    return [AuthoredComment(row[0], row[1], row[2]) for row in rows]


async def page_of_comments(
    session: AsyncSession, viewer: User, post_id: str, params: CursorParams
) -> tuple[list[AuthoredComment], str | None]:
    """Comments under a post, oldest first."""
    statement = readable_comments(viewer).where(Comment.post_id == post_id)
    rows = await session.execute(params.window(statement, Comment.id, descending=False))
    return params.cut([AuthoredComment(row[0], row[1], row[2]) for row in rows], lambda item: item.comment.id)


async def page_of_comments_by(
    session: AsyncSession, author: User, params: CursorParams
) -> tuple[list[AuthoredComment], str | None]:
    """The author's own comments on posts the author may read, oldest first."""
    statement = readable_comments(author).where(Comment.author_id == author.id)
    rows = await session.execute(params.window(statement, Comment.id, descending=False))
    return params.cut([AuthoredComment(row[0], row[1], row[2]) for row in rows], lambda item: item.comment.id)


async def page_of_likes_by(
    session: AsyncSession, user: User, params: CursorParams
) -> tuple[list[Like], str | None]:
    """The user's likes of posts the user may read, newest first; keyset on (liked at, post id)."""
    statement = (
        select(Like).join(Post, Post.id == Like.post_id).where(Like.user_id == user.id, can_read_post(user))
    )
    window = params.window_by_time(statement, Like.created_at, Like.post_id)
    rows = list((await session.scalars(window)).all())
    return params.cut_by_time(rows, lambda like: like.created_at, lambda like: like.post_id)


async def change_comment_count(session: AsyncSession, post_id: str, delta: int) -> bool:
    """Add `delta` to the counter in SQL; False when the post is gone.

    On PostgreSQL the UPDATE also locks the post row until commit, so a concurrent
    deletion of the post waits and then removes the new comment with it.
    """
    statement = (
        update(Post)
        .where(Post.id == post_id)
        .values(comment_count=Post.comment_count + delta)
        .returning(Post.id)
        .execution_options(**NO_SYNC)
    )
    return (await session.execute(statement)).first() is not None


async def delete_comment(session: AsyncSession, comment_id: str) -> bool:
    """Delete the comment; True when it was still there."""
    statement = (
        delete(Comment).where(Comment.id == comment_id).returning(Comment.id).execution_options(**NO_SYNC)
    )
    return (await session.execute(statement)).first() is not None


# --- account deletion -----------------------------------------------------------------


async def lock_account(session: AsyncSession, user_id: str) -> None:
    """Lock the user's row (PostgreSQL) so no like or comment of theirs commits meanwhile.

    Inserting a like or comment checks its foreign key with a share lock on the user
    row, which this lock excludes until the account is gone.
    """
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def uncount_likes_of(session: AsyncSession, user_id: str) -> None:
    """Take the user's likes off the counters of other people's posts, in one statement."""
    await session.execute(
        update(Post)
        .where(Post.id.in_(select(Like.post_id).where(Like.user_id == user_id)), Post.author_id != user_id)
        .values(like_count=Post.like_count - 1)
        .execution_options(**NO_SYNC)
    )


async def uncount_comments_of(session: AsyncSession, user_id: str) -> None:
    """Take the user's comments off the counters of other people's posts, in one statement."""
    per_post = (
        select(func.count())
        .select_from(Comment)
        .where(Comment.post_id == Post.id, Comment.author_id == user_id)
        .scalar_subquery()
    )
    await session.execute(
        update(Post)
        .where(
            Post.id.in_(select(Comment.post_id).where(Comment.author_id == user_id)),
            Post.author_id != user_id,
        )
        .values(comment_count=Post.comment_count - per_post)
        .execution_options(**NO_SYNC)
    )


async def count_posts(session: AsyncSession) -> int:
    """Every post on the server, whoever may read it: a number, no post is loaded."""
    return (await session.execute(select(func.count()).select_from(Post))).scalar_one()
