"""Post cards: a page of posts as the API shows them, in one statement, without the ORM.

A list of posts (the feed, a user's posts) decides which posts are on the page: a
statement of post ids, with its own filter, order and limit. `cards` wraps it into the
one statement that returns everything the page shows: each post's public columns, its
author's public columns (never the password hash or e-mail), whether the viewer liked
it (an EXISTS), and its media, one row per image (a post without images has one row with
NULL media columns). `views` turns those rows into `PostView`s.

Rows, not ORM objects: the page is read-only, so no identity map, no instance state, no
13-column user per author. The statements are built once and run with values (see
kith.feed.repository).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, Select, String, bindparam, exists, select
from sqlalchemy.orm import aliased

from kith.auth.schemas import UserSummary
from kith.db.models import Like, Media, Post, User, Visibility
from kith.media.schemas import MediaView
from kith.posts.schemas import PostView

VIEWER = bindparam("viewer_id", type_=String)
_AUTHOR = aliased(User, name="card_author")
_LIKED = exists().where(Like.post_id == Post.id, Like.user_id == VIEWER).label("liked_by_me")
_COLUMNS = (
    Post.id,
    Post.content,
    Post.visibility,
    Post.like_count,
    Post.comment_count,
    Post.created_at,
    Post.edited_at,
    _AUTHOR.id.label("author_id"),
    _AUTHOR.username,
    _AUTHOR.display_name,
    _AUTHOR.avatar_key,
    _LIKED,
    Media.id.label("media_id"),
    Media.storage_key,
    Media.content_type,
    Media.width,
    Media.height,
    Media.size,
)


def cards(page_ids: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """The cards of the posts whose ids `page_ids` selects (one column, the post id),
    newest first. Run it with `viewer_id` besides the page's own parameters."""
    page = page_ids.cte("page")
    return (
        select(*_COLUMNS)
        .select_from(page)
        .join(Post, Post.id == page.c.id)
        .join(_AUTHOR, _AUTHOR.id == Post.author_id)
        .outerjoin(Media, Media.post_id == Post.id)
        .order_by(Post.id.desc(), Media.position)
    )


# For lists whose ids are already known (the feed's Redis timelines).
_BY_IDS = cards(select(Post.id).where(Post.id.in_(bindparam("post_ids", expanding=True))))


def by_ids(post_ids: Sequence[str], viewer_id: str) -> tuple[Select[*tuple[Any, ...]], dict[str, object]]:
    """The cards statement for `post_ids` (already checked as readable), with its values."""
    return _BY_IDS, {"post_ids": list(post_ids), "viewer_id": viewer_id}


def views(rows: Iterable[Row[Any]]) -> list[PostView]:
    """One `PostView` per post, in row order; a post's image rows follow each other."""
    found: list[PostView] = []
    current: PostView | None = None
    for row in rows:
        if current is None or current.id != row.id:
            current = PostView.model_construct(
                id=row.id,
                author=UserSummary.model_construct(
                    id=row.author_id,
                    username=row.username,
                    display_name=row.display_name,
                    avatar_key=row.avatar_key,
                ),
                content=row.content,
                visibility=Visibility(row.visibility),
                media=[],
                like_count=row.like_count,
                comment_count=row.comment_count,
                liked_by_me=bool(row.liked_by_me),
                created_at=row.created_at,
                edited_at=row.edited_at,
            )
            found.append(current)
        if row.media_id is not None:
            current.media.append(
                MediaView.model_construct(
                    id=row.media_id,
                    storage_key=row.storage_key,
                    content_type=row.content_type,
                    width=row.width,
                    height=row.height,
                    size=row.size,
                )
            )
    return found
