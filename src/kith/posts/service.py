"""Post rules: writing and editing posts, likes and comments, and who may remove what.

Every counter changes in SQL in the same transaction as the rows it counts, and only
when a row really was inserted or deleted, so `like_count` and `comment_count` always
equal the rows behind them, however many requests race.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.audit import service as audit
from kith.auth import service as auth
from kith.auth.schemas import UserSummary
from kith.core.errors import BadRequest, NotFound, Unprocessable
from kith.core.pagination import CursorParams
from kith.core.storage import MediaStorage
from kith.db.models import Comment, Media, NotificationType, Post, User, Visibility
from kith.media import service as media
from kith.media.schemas import MediaView
from kith.notifications import service as notifications
from kith.posts import repository
from kith.posts.events import PostPublished, PostRemoved
from kith.posts.repository import AuthoredComment, AuthoredPost
from kith.posts.schemas import (
    CommentCreate,
    CommentUpdate,
    CommentView,
    LikedPost,
    Liker,
    LikeState,
    PostCreate,
    PostUpdate,
    PostView,
)
from kith.runtime.events import announce
from kith.social import service as social

# The query every list of posts starts from (the feed builds on it too).
readable_posts = repository.readable_posts
page_of_posts = repository.page_of_posts
posts_between = repository.posts_between
posts_by_author = repository.posts_by_author


def public_posts(viewer: User) -> Select[Post, User]:
    """Every public post the viewer may read (not by someone in a block with them)."""
    return repository.readable_posts(viewer).where(Post.visibility == Visibility.public)


class PostNotFound(NotFound):
    code = "post_not_found"
    default_detail = "No such post, or it is not visible to you."
    description = "No such post, or not visible to the caller."


class CommentNotFound(NotFound):
    code = "comment_not_found"
    default_detail = "No such comment, or it is not visible to you."
    description = "No such comment, or not visible to the caller."


class PostNeedsContent(BadRequest):
    code = "post_needs_content"
    default_detail = "A post without images needs text."
    description = "A post without images cannot have its text emptied."


def _empty_post_error() -> Unprocessable:
    error = Unprocessable("A post needs text, images, or both.")
    error.errors = [
        {"field": "body.content", "message": "content or media_ids is required", "type": "value_error"}
    ]
    return error


# --- loading and presenting ------------------------------------------------------------


async def readable_post(session: AsyncSession, viewer: User, post_id: str) -> AuthoredPost:
    """The post with its author if `viewer` may read it, else 404."""
    found = await repository.readable_post(session, viewer, post_id)
    if found is None:
        raise PostNotFound()
    return found


async def readable_posts_by_id(
    session: AsyncSession, viewer: User, post_ids: Sequence[str]
) -> list[AuthoredPost]:
    """Those of `post_ids` that `viewer` may read, in one query."""
    return await repository.readable_posts_by_id(session, viewer, post_ids)


async def post_views(session: AsyncSession, viewer: User, posts: Sequence[AuthoredPost]) -> list[PostView]:
    """Present posts (loaded with their authors) as the API shows them.

    Two queries for any number of posts: which the viewer liked, and their media.
    """
    post_ids = [item.post.id for item in posts]
    liked = await repository.liked_among(session, viewer.id, post_ids)
    media_by_post = await media.media_of_posts(session, post_ids)
    return [
        _view(post, author, liked=post.id in liked, attached=media_by_post.get(post.id, []))
        for post, author in posts
    ]


async def new_post_view(session: AsyncSession, created: AuthoredPost, *, with_media: bool) -> PostView:
    """A post just published: nobody has liked it yet, and without uploads it has no media,
    so it costs no query (with uploads, one for its media)."""
    attached: list[Media] = []
    if with_media:
        attached = (await media.media_of_posts(session, [created.post.id]))[created.post.id]
    return _view(created.post, created.author, liked=False, attached=attached)


def _view(post: Post, author: User, *, liked: bool, attached: Sequence[Media]) -> PostView:
    return PostView(
        id=post.id,
        author=UserSummary.model_validate(author),
        content=post.content,
        visibility=post.visibility,
        media=[MediaView.model_validate(item) for item in attached],
        like_count=post.like_count,
        comment_count=post.comment_count,
        liked_by_me=liked,
        created_at=post.created_at,
        edited_at=post.edited_at,
    )


async def post_view(session: AsyncSession, viewer: User, post: AuthoredPost) -> PostView:
    return (await post_views(session, viewer, [post]))[0]


async def visible_author(session: AsyncSession, viewer: User, user_id: str) -> User:
    """A user whose profile the viewer may see, else 404: unknown, suspended or in a block."""
    user = await social.visible_user(session, viewer, user_id)
    if user.id != viewer.id and not viewer.is_staff and await repository.blocked(session, viewer.id, user.id):
        raise auth.UserNotFound()
    return user


async def posts_of_user(
    session: AsyncSession, viewer: User, user_id: str, params: CursorParams
) -> tuple[list[PostView], str | None]:
    """The user's posts that the viewer may read, newest first."""
    author = await visible_author(session, viewer, user_id)
    posts, next_cursor = await repository.page_of_posts(
        session, repository.posts_by_author(viewer, author.id), params
    )
    return await post_views(session, viewer, posts), next_cursor


# --- writing posts ---------------------------------------------------------------------


async def create_post(
    session: AsyncSession, author: User, data: PostCreate, *, now: datetime
) -> AuthoredPost:
    """Publish a post, attaching the author's own unattached uploads in the order given."""
    if not data.content and not data.media_ids:
        raise _empty_post_error()
    post = Post(author_id=author.id, content=data.content, visibility=data.visibility)
    session.add(post)
    await session.flush()
    if data.media_ids:
        await media.attach_to_post(session, author, post, data.media_ids, now=now)
        await session.flush()  # autoflush is off: later queries must see the attachment
    await announce(
        session, PostPublished(post_id=post.id, author_id=post.author_id, visibility=post.visibility)
    )
    return AuthoredPost(post, author)


async def update_post(
    session: AsyncSession, target: AuthoredPost, changes: PostUpdate, *, now: datetime
) -> AuthoredPost:
    """Change the text or the audience of one's own post; stamps `edited_at`.

    Emptying the text of a post that has no images is 400 `post_needs_content`.
    """
    post = target.post
    if changes.content is not None:
        if not changes.content and not (await media.media_of_posts(session, [post.id])).get(post.id):
            # A rule of the post's stored state (does it have images?), hence 400, not 422.
            error = PostNeedsContent()
            error.errors = [
                {"field": "body.content", "message": "this post has no images", "type": "value_error"}
            ]
            raise error
        post.content = changes.content
    if changes.visibility is not None and changes.visibility != post.visibility:
        post.visibility = changes.visibility
        await announce(
            session,
            PostPublished(post_id=post.id, author_id=post.author_id, visibility=post.visibility, new=False),
        )
    post.edited_at = now
    await session.flush()
    return target


def may_remove_post(actor: User, post: Post) -> bool:
    return actor.id == post.author_id or actor.is_staff


async def remove_post(
    session: AsyncSession, files: MediaStorage, actor: User, target: AuthoredPost, **details: Any
) -> None:
    """Delete a post with its likes, comments and images (their files go at the commit).

    Staff removing someone else's post leaves an entry in the audit log.
    """
    post = target.post
    if actor.id != post.author_id:
        audit.record_action(
            session, actor, "post.removed", "post", post.id, author_id=post.author_id, **details
        )
    await media.forget_post_media(session, files, post.id)
    await repository.delete_post(session, post.id)
    await announce(
        session, PostRemoved(post_id=post.id, author_id=post.author_id, visibility=post.visibility)
    )


# --- likes -----------------------------------------------------------------------------


async def like(session: AsyncSession, viewer: User, post: Post, *, now: datetime) -> tuple[LikeState, bool]:
    """Like a post the viewer can read; liking again changes nothing. True if new."""
    try:
        inserted = await repository.insert_like(session, post.id, viewer.id, now)
    except IntegrityError:
        # The post was deleted between loading it and inserting the like.
        raise PostNotFound() from None
    if inserted:
        count = await repository.change_like_count(session, post.id, +1)
        if count is None:
            raise PostNotFound()
        await notifications.notify(
            session,
            recipient_id=post.author_id,
            actor=viewer,
            type=NotificationType.post_liked,
            post_id=post.id,
        )
    else:
        count = await repository.like_count(session, post.id)
    return LikeState(like_count=count, liked_by_me=True), inserted


async def unlike(session: AsyncSession, viewer: User, post: Post) -> None:
    """Take back a like; without one, nothing happens."""
    if await repository.delete_like(session, post.id, viewer.id):
        await repository.change_like_count(session, post.id, -1)
        await notifications.withdraw_like(session, viewer.id, post.id)


async def likers(
    session: AsyncSession, viewer: User, post: Post, params: CursorParams
) -> tuple[list[Liker], str | None]:
    """Who liked the post, newest like first; people hidden from the viewer are left out."""
    rows, next_cursor = await repository.page_of_likers(session, viewer, post.id, params)
    items = [
        Liker(
            id=row.user.id,
            username=row.user.username,
            display_name=row.user.display_name,
            avatar_key=row.user.avatar_key,
            liked_at=row.like.created_at,
        )
        for row in rows
    ]
    return items, next_cursor


# --- comments --------------------------------------------------------------------------


def comment_view(item: AuthoredComment) -> CommentView:
    comment = item.comment
    return CommentView(
        id=comment.id,
        post_id=comment.post_id,
        author=UserSummary.model_validate(item.author),
        content=comment.content,
        created_at=comment.created_at,
        edited_at=comment.edited_at,
    )


async def readable_comment(session: AsyncSession, viewer: User, comment_id: str) -> AuthoredComment:
    """A comment the viewer can see (on a post they can read, by someone not hidden), else 404."""
    found = await repository.readable_comment(session, viewer, comment_id)
    if found is None:
        raise CommentNotFound()
    return found


async def readable_comments_by_id(
    session: AsyncSession, viewer: User, comment_ids: Sequence[str]
) -> list[AuthoredComment]:
    """Those of `comment_ids` that `viewer` can see, in one query."""
    return await repository.readable_comments_by_id(session, viewer, comment_ids)


async def comments(
    session: AsyncSession, viewer: User, post: Post, params: CursorParams
) -> tuple[list[AuthoredComment], str | None]:
    """The post's comments, oldest first, without those by people hidden from the viewer."""
    return await repository.page_of_comments(session, viewer, post.id, params)


async def comments_by(
    session: AsyncSession, author: User, params: CursorParams
) -> tuple[list[CommentView], str | None]:
    """The author's own comments on posts the author may read, oldest first, as
    `GET /posts/{id}/comments` shows each (an account's data export)."""
    found, next_cursor = await repository.page_of_comments_by(session, author, params)
    return [comment_view(item) for item in found], next_cursor


async def likes_by(
    session: AsyncSession, user: User, params: CursorParams
) -> tuple[list[LikedPost], str | None]:
    """The posts the user liked and may read, newest like first (an account's data export)."""
    found, next_cursor = await repository.page_of_likes_by(session, user, params)
    return [LikedPost(post_id=like.post_id, liked_at=like.created_at) for like in found], next_cursor


async def add_comment(
    session: AsyncSession, author: User, post: Post, data: CommentCreate
) -> AuthoredComment:
    """Comment on a post the author can read."""
    # Counting first locks the post row, so a deletion racing this comment either
    # happens before (404 here) or waits and takes the comment with it.
    if not await repository.change_comment_count(session, post.id, +1):
        raise PostNotFound()
    comment = Comment(post_id=post.id, author_id=author.id, content=data.content)
    session.add(comment)
    await session.flush()
    await notifications.notify(
        session,
        recipient_id=post.author_id,
        actor=author,
        type=NotificationType.post_commented,
        post_id=post.id,
        comment_id=comment.id,
    )
    return AuthoredComment(comment, author, post.author_id)


async def edit_comment(
    session: AsyncSession, target: AuthoredComment, changes: CommentUpdate, *, now: datetime
) -> AuthoredComment:
    """Change one's own comment; stamps `edited_at`."""
    target.comment.content = changes.content
    target.comment.edited_at = now
    await session.flush()
    return target


def may_remove_comment(actor: User, target: AuthoredComment) -> bool:
    return actor.id in (target.comment.author_id, target.post_author_id) or actor.is_staff


async def remove_comment(session: AsyncSession, actor: User, target: AuthoredComment, **details: Any) -> None:
    """Delete a comment. Staff removing someone else's comment leaves an audit log entry."""
    comment = target.comment
    if actor.id not in (comment.author_id, target.post_author_id):
        audit.record_action(
            session,
            actor,
            "comment.removed",
            "comment",
            comment.id,
            author_id=comment.author_id,
            post_id=comment.post_id,
            **details,
        )
    if await repository.delete_comment(session, comment.id):
        await repository.change_comment_count(session, comment.post_id, -1)


# --- accounts --------------------------------------------------------------------------


async def forget_activity_of(session: AsyncSession, user_id: str) -> None:
    """Before an account is deleted: take its likes and comments off other posts' counters.

    The rows themselves go with the account (ON DELETE CASCADE); the counters must
    go down with them.
    """
    await repository.lock_account(session, user_id)
    await repository.uncount_likes_of(session, user_id)
    await repository.uncount_comments_of(session, user_id)


async def post_count(session: AsyncSession) -> int:
    """How many posts the server holds."""
    return await repository.count_posts(session)
