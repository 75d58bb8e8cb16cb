"""SQL expressions for relationships, shared by every query that must respect them.

Other domains build their visibility rules from these (through `social.service`), so
"friends" and "blocked" mean the same thing in every query.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from kith.db.models import Block, Friendship

UserColumn = InstrumentedAttribute[str] | ColumnElement[str]


def is_friend_of(viewer_id: str, other: UserColumn) -> ColumnElement[bool]:
    """True where `other` is a friend of the viewer."""
    return exists(
        select(Friendship.user_id).where(Friendship.user_id == viewer_id, Friendship.friend_id == other)
    )


def blocked_either_way(viewer_id: str, other: UserColumn) -> ColumnElement[bool]:
    """True where the viewer blocked `other` or `other` blocked the viewer."""
    return exists(
        select(Block.blocker_id).where(
            or_(
                and_(Block.blocker_id == viewer_id, Block.blocked_id == other),
                and_(Block.blocker_id == other, Block.blocked_id == viewer_id),
            )
        )
    )


def friend_ids_of(user_id: str) -> Select[str]:
    """A subquery of the user's friends' ids."""
    return select(Friendship.friend_id).where(Friendship.user_id == user_id)
