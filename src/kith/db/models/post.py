from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import ID_LENGTH, Base, CreatedAtMixin, IdMixin, foreign_id, utcnow


class Visibility(StrEnum):
    public = "public"
    friends = "friends"
    private = "private"


class Post(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_author_id_id", "author_id", "id"),)

    author_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[Visibility] = mapped_column(String(16), default=Visibility.friends)
    # Denormalised counters, changed in the same statement batch as the rows they count.
    like_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    comment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    edited_at: Mapped[datetime | None]


class Like(Base):
    __tablename__ = "likes"

    post_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_post_id_id", "post_id", "id"),)

    post_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("posts.id", ondelete="CASCADE"))
    author_id: Mapped[str] = foreign_id("users.id")
    content: Mapped[str] = mapped_column(Text)
    edited_at: Mapped[datetime | None]
