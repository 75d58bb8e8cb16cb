from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import ID_LENGTH, Base, CreatedAtMixin, IdMixin, foreign_id


class NotificationType(StrEnum):
    friend_request = "friend_request"
    friend_accepted = "friend_accepted"
    post_liked = "post_liked"
    post_commented = "post_commented"


class Notification(IdMixin, CreatedAtMixin, Base):
    """Something that happened to a user. Deleting its source deletes it (cascades)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
    )

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[NotificationType] = mapped_column(String(32))
    actor_id: Mapped[str] = foreign_id("users.id")
    post_id: Mapped[str | None] = foreign_id("posts.id", nullable=True)
    comment_id: Mapped[str | None] = foreign_id("comments.id", nullable=True)
    friend_request_id: Mapped[str | None] = foreign_id("friend_requests.id", nullable=True)
    read_at: Mapped[datetime | None]
