from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class TokenPurpose(StrEnum):
    verify_email = "verify_email"
    reset_password = "reset_password"


class OneTimeToken(IdMixin, CreatedAtMixin, Base):
    """A single-use token sent by e-mail (verification or password reset), hashed."""

    __tablename__ = "one_time_tokens"

    user_id: Mapped[str] = foreign_id("users.id")
    purpose: Mapped[TokenPurpose] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address a verification token proves; a changed address invalidates it.
    email: Mapped[str] = mapped_column(String(254))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
