from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class AuthSession(IdMixin, CreatedAtMixin, Base):
    """One login: the family of refresh tokens and the access tokens minted from them."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[str] = foreign_id("users.id")
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_agent: Mapped[str | None] = mapped_column(String(255))


class RefreshToken(IdMixin, CreatedAtMixin, Base):
    """A refresh token, stored as a SHA-256 hash; `used_at` is set when rotated."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[str] = foreign_id("auth_sessions.id")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]
