"""SQL expressions for relationships, shared by every query that must respect them.

Other domains build their visibility rules from these (through `social.service`), so
"friends" and "blocked" mean the same thing in every query.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, exists, select, true
from sqlalchemy.orm import InstrumentedAttribute

from kith.db.models import Block, Friendship, User

UserColumn = InstrumentedAttribute[str] | ColumnElement[str]


class Relationship(StrEnum):
    """How the viewer of a profile stands to its owner."""

    self = "self"
    none = "none"
    friends = "friends"
    request_sent = "request_sent"
    request_received = "request_received"


def is_friend_of(viewer_id: str | ColumnElement[str], other: UserColumn) -> ColumnElement[bool]:
    """True where `other` is a friend of the viewer."""
    return exists(
        select(Friendship.user_id).where(Friendship.user_id == viewer_id, Friendship.friend_id == other)
    )


def blocked_either_way(viewer_id: str | ColumnElement[str], other: UserColumn) -> ColumnElement[bool]:
    """True where the viewer blocked `other` or `other` blocked the viewer.

    `viewer_id` may be a bound parameter, for statements built once and run with values.
    """
    return Block.either_way(viewer_id, other)


def friend_ids_of(user_id: str) -> Select[str]:
    """A subquery of the user's friends' ids."""
    return select(Friendship.friend_id).where(Friendship.user_id == user_id)


def visible_to(viewer: User) -> ColumnElement[bool]:
    """A WHERE clause on `User`: the users the viewer may see in a list.

    Nobody sees a user in a block with them, either way; plain users do not see
    suspended accounts (staff do).
    """
    not_suspended = true() if viewer.is_staff else User.suspended.is_(False)
    return and_(not_suspended, ~blocked_either_way(viewer.id, User.id))
