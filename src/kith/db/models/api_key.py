from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class ApiKey(IdMixin, CreatedAtMixin, Base):
    """A personal API key; only its SHA-256 hash and a display prefix are kept."""

    __tablename__ = "api_keys"

    user_id: Mapped[str] = foreign_id("users.id")
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated scope names: "read" or "read write".
    scopes: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()
