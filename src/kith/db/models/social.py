from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, ForeignKey, Index, String, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column

from kith.db.base import ID_LENGTH, Base, CreatedAtMixin, IdMixin, foreign_id, utcnow


class FriendRequestStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"


def pair_key(first_user_id: str, second_user_id: str) -> str:
    """The same key for A→B and B→A: at most one pending request per pair of users."""
    low, high = sorted((first_user_id, second_user_id))
    return f"{low}:{high}"


class FriendRequest(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "friend_requests"

    sender_id: Mapped[str] = foreign_id("users.id")
    receiver_id: Mapped[str] = foreign_id("users.id")
    status: Mapped[FriendRequestStatus] = mapped_column(String(16), default=FriendRequestStatus.pending)
    # Set while pending, NULL afterwards; unique, so two concurrent requests between the
    # same two users (in either direction) cannot both be pending.
    pending_pair: Mapped[str | None] = mapped_column(String(2 * ID_LENGTH + 1), unique=True)
    responded_at: Mapped[datetime | None]


class Friendship(Base):
    """One row per direction: (A, B) and (B, A), created and deleted together."""

    __tablename__ = "friendships"
    __table_args__ = (Index("ix_friendships_user_id_created_at", "user_id", "created_at"),)

    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    friend_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# A user id in a query: a value, a bound parameter or a column.
UserOperand = str | ColumnElement[str] | InstrumentedAttribute[str]


class Block(Base):
    __tablename__ = "blocks"

    blocker_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    blocked_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def either_way(one: UserOperand, other: UserOperand) -> ColumnElement[bool]:
        """True where `one` blocked `other` or `other` blocked `one`: an EXISTS, where either
        may be a column or a bound parameter. The one definition every domain's queries use."""
        return exists(
            select(Block.blocker_id).where(
                or_(
                    and_(Block.blocker_id == one, Block.blocked_id == other),
                    and_(Block.blocker_id == other, Block.blocked_id == one),
                )
            )
        )
