"""Post cards: a page of posts as the API shows them, in one statement, without the ORM.

A list of posts (the feed, a user's posts) decides which posts are on the page: a
statement of post ids, with its own filter, order and limit. `cards` wraps it into the
one statement that returns everything the page shows: each post's public columns, its
author's public columns (never the password hash or e-mail), whether the viewer liked
it (an EXISTS), and its media, one row per image (a post without images has one row with
NULL media columns). `views` turns those rows into `PostView`s.

The row's columns are read by position, in the order of `_COLUMNS`.

Rows, not ORM objects: the page is read-only, so no identity map, no instance state, no
13-column user per author. The statements are built once and run with values (see
kith.feed.repository), by `fetch` on the session's connection: SQLAlchemy Core's execution,
without the ORM's (which cost about 85 µs a feed page for rows it would not map anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Result, Select, String, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kith.db.models import Like, Media, Post, User
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


# Validated in pydantic-core from plain dicts: a third of the cost of building the same
# models one `model_construct` at a time in Python (docs/benchmarks.md).
_POST_VIEWS: TypeAdapter[list[PostView]] = TypeAdapter(list[PostView])


async def fetch(session: AsyncSession, statement: Select[Any], values: dict[str, Any]) -> Result[Any]:
    """Run a card statement in `session`'s transaction, on its connection (Core, not the ORM)."""
    connection = await session.connection()
    result: Result[Any] = await connection.execute(statement, values)
    return result


def views(rows: Iterable[Sequence[Any]]) -> list[PostView]:
    """One `PostView` per post, in row order; a post's image rows follow each other."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for row in rows:
        (post_id, content, visibility, like_count, comment_count, created_at, edited_at) = row[:7]
        if current is None or current["id"] != post_id:
            current = {
                "id": post_id,
                "author": {"id": row[7], "username": row[8], "display_name": row[9], "avatar_key": row[10]},
                "content": content,
                "visibility": visibility,
                "media": [],
                "like_count": like_count,
                "comment_count": comment_count,
                "liked_by_me": bool(row[11]),
                "created_at": created_at,
                "edited_at": edited_at,
            }
            found.append(current)
        if row[12] is not None:
            current["media"].append(
                {
                    "id": row[12],
                    "storage_key": row[13],
                    "content_type": row[14],
                    "width": row[15],
                    "height": row[16],
                    "size": row[17],
                }
            )
    return _POST_VIEWS.validate_python(found)
