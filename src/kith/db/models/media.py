from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import ID_LENGTH, Base, CreatedAtMixin, IdMixin, foreign_id


class Media(IdMixin, CreatedAtMixin, Base):
    """An uploaded, re-encoded image. Unattached uploads are removed after 24 hours."""

    __tablename__ = "media"

    owner_id: Mapped[str] = foreign_id("users.id")
    # Random file name in storage; also the public URL's last segment.
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    post_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("posts.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attached_at: Mapped[datetime | None]
