"""Who may read which post: the one rule, as SQL, used by every query that loads posts.

A post is readable by its author; by everyone if public; by the author's friends if
`friends`; by nobody else if private. Blocks hide everything both ways, and suspended
authors' posts are hidden. Moderators and admins read every post.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select, true

from kith.db.models import Post, User, Visibility
from kith.social.relations import blocked_either_way, is_friend_of


def can_read_post(viewer: User) -> ColumnElement[bool]:
    """A WHERE clause on `Post` that keeps only the posts `viewer` may read."""
    if viewer.is_staff:
        return true()
    return readable_by_user(viewer.id)


def readable_by_user(viewer_id: str | ColumnElement[str]) -> ColumnElement[bool]:
    """The rule for a viewer who is not staff; `viewer_id` may be a bound parameter."""
    author_active = exists(select(User.id).where(User.id == Post.author_id, User.suspended.is_(False)))
    return or_(
        Post.author_id == viewer_id,
        and_(
            author_active,
            ~blocked_either_way(viewer_id, Post.author_id),
            or_(
                Post.visibility == Visibility.public,
                and_(Post.visibility == Visibility.friends, is_friend_of(viewer_id, Post.author_id)),
            ),
        ),
    )
