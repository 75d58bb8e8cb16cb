from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, IdMixin


class OutgoingEmail(IdMixin, Base):
    """An e-mail the SMTP server did not take, kept until a later attempt delivers it.

    `message` is the whole message as sent (headers included, so every attempt carries
    the same `Message-ID`). `attempts` counts the attempts so far and doubles as the
    row's version: an attempt is claimed by moving `next_attempt_at` on, in an UPDATE
    that names the `attempts` it read, so two workers never send the same row at once.
    A row is deleted once delivered, or after `KITH_EMAIL_RETRY_HOURS`.
    """

    __tablename__ = "outgoing_emails"
    __table_args__ = (Index("ix_outgoing_emails_next_attempt_at", "next_attempt_at"),)

    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
